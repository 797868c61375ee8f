//! Corrupt and hostile `.npy` files: every one gives a one-line error (or, when the
//! corruption happens to leave a valid file, values), never a panic, and memory stays in
//! proportion to the file's size, whatever its header claims.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use convscope_image::{npy_bytes_f32, parse_npy_bytes_f32};
use convscope_test_support::Rng;

/// Records the largest single allocation made on threads that ask for it.
struct Watching;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let _ = WATCH.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Parses `bytes` and checks the outcome: no panic, a one-line error of modest length, and no
/// allocation larger than the file's values could need (4 bytes per input byte, plus slack).
fn parse_checked(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    LARGEST.with(|l| l.set(0));
    WATCH.with(|w| w.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| parse_npy_bytes_f32(bytes)));
    WATCH.with(|w| w.set(false));
    let largest = LARGEST.with(|l| l.get());
    let result = result.unwrap_or_else(|_| panic!("{what}: the parser panicked on {bytes:?}"));
    assert!(
        largest <= 4 * bytes.len() + 4096,
        "{what}: a {}-byte file made a {largest}-byte allocation",
        bytes.len()
    );
    result.map_err(|e| {
        let message = e.to_string();
        assert!(
            !message.contains('\n') && !message.contains('\r'),
            "{what}: the error is not one line: {message:?}"
        );
        assert!(
            message.len() < 200,
            "{what}: the error is {} characters long: {message}",
            message.len()
        );
        message
    })
}

/// A version-1 file with a hand-written header dictionary.
fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.resize(total - 1, b' ');
    b.push(b'\n');
    b.extend_from_slice(data);
    b
}

#[test]
fn hostile_headers_give_short_one_line_errors() {
    let f4 =
        |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // A version-2 header claiming 4 GiB in a 12-byte file.
        (b"\x93NUMPY\x02\x00\xff\xff\xff\xff{'".to_vec(), "exceeds"),
        // A shape of 4·10⁹ values over 4 bytes of data.
        (
            with_header(&f4("(1000000000, 4)"), &[0; 4]),
            "needs 16000000000 data bytes",
        ),
        (
            with_header(&f4("(99999999999, 99999999999, 99999999999)"), &[0; 4]),
            "overflows",
        ),
        (with_header(&f4("(-1,)"), &[0; 4]), "bad shape"),
        (
            with_header(
                &f4(&format!("{}1,{}", "(".repeat(5000), ")".repeat(5000))),
                &[],
            ),
            "bad shape",
        ),
        (with_header(&f4("(2,\nevil\n)"), &[0; 8]), "bad shape"),
        (
            with_header(&f4(&format!("({})", "7, ".repeat(3000))), &[]),
            "overflows",
        ),
        (
            with_header(
                "{'descr': '<f4\nrm -rf', 'fortran_order': False, 'shape': (1,), }",
                &[0; 4],
            ),
            "unsupported dtype",
        ),
        (
            with_header(
                &format!(
                    "{{'descr': '{}', 'fortran_order': False, 'shape': (1,), }}",
                    "x".repeat(5000)
                ),
                &[0; 4],
            ),
            "unsupported dtype",
        ),
        (
            with_header(
                "{'descr': '<f4', 'fortran_order': Maybe\nNot, 'shape': (1,), }",
                &[0; 4],
            ),
            "fortran_order",
        ),
        (
            with_header("{'descr': '<f4', 'fortran_order': False, }", &[0; 4]),
            "no 'shape'",
        ),
        (
            // Two of the four data bytes.
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                &[0; 2],
            ),
            "needs 4 data bytes",
        ),
        (
            b"\x93NUMPY\x01\x00\x04\x00\xff\xfe\xfd\xfc".to_vec(),
            "not valid text",
        ),
    ];
    for (bytes, want) in cases {
        let e = parse_checked(&bytes, want).expect_err("a hostile file must be rejected");
        assert!(e.contains(want), "expected '{want}' in '{e}'");
    }
}

/// Applies one random corruption to a valid file, mostly in its header.
fn corrupt(rng: &mut Rng, file: &mut Vec<u8>, header_end: usize) {
    let in_header = |rng: &mut Rng, len: usize| rng.below(header_end.min(len).max(1));
    match rng.below(6) {
        0 => {
            let at = in_header(rng, file.len());
            file[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = in_header(rng, file.len());
            file[at] = *rng.pick(b"()',:{}\n\x00 -9L'\"TrueFalse<>|f4i8u1c16");
        }
        2 => {
            // The header length field: anything from 0 to 4 GiB.
            let v = rng.next_u64() >> rng.below(64);
            let n = if file[6] == 1 { 2 } else { 4 };
            for k in 0..n {
                file[8 + k] = (v >> (8 * k)) as u8;
            }
        }
        3 => {
            let at = in_header(rng, file.len());
            let n = 1 + rng.below(40);
            let junk = rng.bytes(n);
            file.splice(at..at, junk);
        }
        4 => {
            let at = in_header(rng, file.len());
            let end = (at + 1 + rng.below(20)).min(file.len());
            file.drain(at..end);
        }
        _ => file.truncate(rng.below(file.len() + 1)),
    }
}

#[test]
fn mutated_files_never_panic_or_overallocate() {
    let mut rng = Rng::new(0x6e70_795f);
    let originals: Vec<Vec<u8>> = vec![
        npy_bytes_f32(&[2, 3], &[1.5; 6]),
        npy_bytes_f32(&[], &[7.0]),
        npy_bytes_f32(&[0, 4], &[]),
        npy_bytes_f32(&[3, 1, 2, 2], &[0.25; 12]),
        with_header(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
            &[1; 16],
        ),
        with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }",
            &[9; 5],
        ),
    ];
    let (mut rejected, mut accepted) = (0, 0);
    for i in 0..6000 {
        let original = &originals[i % originals.len()];
        let header_end = 10 + u16::from_le_bytes([original[8], original[9]]) as usize;
        let mut file = original.clone();
        for _ in 0..1 + rng.below(3) {
            if file.len() < 10 {
                break;
            }
            corrupt(&mut rng, &mut file, header_end);
        }
        match parse_checked(&file, &format!("mutant {i}")) {
            Ok((shape, values)) => {
                assert_eq!(shape.iter().product::<usize>(), values.len(), "mutant {i}");
                accepted += 1;
            }
            Err(_) => rejected += 1,
        }
    }
    eprintln!("{rejected} mutants rejected, {accepted} still valid");
    assert!(
        rejected > 4000,
        "only {rejected} of 6000 mutants were rejected"
    );
}
