//! `.npy` interoperability with NumPy itself. Skipped (with a message) when
//! `python3` with `numpy` is not available.

use std::process::Command;

use convscope_image::{read_npy_f32, save_npy_f32};
use convscope_test_support::TempDir;

fn numpy_available() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn numpy_reads_our_files_and_we_read_numpys() {
    if !numpy_available() {
        eprintln!("skipping: python3 with numpy not available");
        return;
    }
    let dir = TempDir::new("npy-numpy");
    let tmp = |name: &str| dir.path(name);
    let ours = tmp("ours.npy");
    let data: Vec<f32> = (0..2 * 3 * 5).map(|i| i as f32 * 0.25 - 1.0).collect();
    save_npy_f32(&ours, &[2, 3, 5], &data).unwrap();
    let script = format!(
        "import numpy as np\n\
         a = np.load(r'{ours}')\n\
         assert a.dtype == np.float32 and a.shape == (2, 3, 5), (a.dtype, a.shape)\n\
         assert a.flags['C_CONTIGUOUS']\n\
         assert float(a[1, 2, 4]) == 29 * 0.25 - 1.0\n\
         np.save(r'{f8}', np.arange(6, dtype=np.float64).reshape(3, 2) / 4)\n\
         np.save(r'{i8}', np.array([[-3, 7]], dtype=np.int64))\n\
         np.save(r'{u1}', np.array([0, 200, 255], dtype=np.uint8))\n\
         np.save(r'{f4}', np.linspace(0, 1, 7, dtype=np.float32))\n\
         np.save(r'{fortran}', np.asfortranarray(np.ones((2, 3), dtype=np.float32)))\n\
         np.save(r'{c16}', np.ones(2, dtype=np.complex128))\n",
        ours = ours.display(),
        f8 = tmp("f8.npy").display(),
        i8 = tmp("i8.npy").display(),
        u1 = tmp("u1.npy").display(),
        f4 = tmp("f4.npy").display(),
        fortran = tmp("fortran.npy").display(),
        c16 = tmp("c16.npy").display(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(
        read_npy_f32(&tmp("f8.npy")).unwrap(),
        (vec![3, 2], vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    );
    assert_eq!(
        read_npy_f32(&tmp("i8.npy")).unwrap(),
        (vec![1, 2], vec![-3.0, 7.0])
    );
    assert_eq!(
        read_npy_f32(&tmp("u1.npy")).unwrap(),
        (vec![3], vec![0.0, 200.0, 255.0])
    );
    let (shape, v) = read_npy_f32(&tmp("f4.npy")).unwrap();
    assert_eq!((shape, v.len(), v[6]), (vec![7], 7, 1.0));
    let e = read_npy_f32(&tmp("fortran.npy")).unwrap_err().to_string();
    assert!(e.contains("fortran_order"), "{e}");
    let e = read_npy_f32(&tmp("c16.npy")).unwrap_err().to_string();
    assert!(e.contains("unsupported dtype <c16"), "{e}");
    // Byte-identical to numpy.save for the same array.
    let script = format!(
        "import numpy as np, sys\n\
         np.save(r'{p}', np.arange(30, dtype=np.float32).reshape(2, 3, 5) * 0.25 - 1.0)\n",
        p = tmp("np_same.npy").display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&ours).unwrap(),
        std::fs::read(tmp("np_same.npy")).unwrap()
    );
}
