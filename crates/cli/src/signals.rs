//! SIGINT and SIGTERM: remove this run's staging folders, then exit 130 / 143 as a shell
//! expects of a process ended by that signal.

/// Starts the thread that waits for the signals.
#[cfg(unix)]
pub(crate) fn install() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            convscope::output::remove_live_staging();
            std::process::exit(128 + sig);
        }
    });
}

#[cfg(not(unix))]
pub(crate) fn install() {}
