//! Where ONNX Runtime and the models are: the container image's `/opt` layout first, then
//! the checkout's `models/opt` (laid out by `models/fetch`), unless the environment says.

use std::path::{Path, PathBuf};

use crate::model::ModelSet;

/// The shared library inside the `onnxruntime==1.31.1` wheel.
pub const ORT_LIBRARY: &str = "libonnxruntime.so.1.31.1";
/// The shared library inside the `pypdfium2==5.15.2` wheel (PDFium build 8149).
pub const PDFIUM_LIBRARY: &str = "libpdfium.so";

pub mod var {
    /// Full path of `libonnxruntime.so.1.31.1`.
    pub const ORT_LIB: &str = "DOCUSNAP_ORT_LIB";
    /// Full path of `libpdfium.so`.
    pub const PDFIUM_LIB: &str = "DOCUSNAP_PDFIUM_LIB";
    /// Folder holding one sub-folder per model set.
    pub const MODELS_DIR: &str = "DOCUSNAP_MODELS_DIR";
    /// `ppocr-v4` or `ppocr-v6`.
    pub const MODEL_SET: &str = "DOCUSNAP_OCR_MODELS";
    /// The most cores one page reads with (at most the machine's), and pages the OCR
    /// function reads at once; default: the CPUs this process may use.
    pub const THREADS: &str = "DOCUSNAP_OCR_THREADS";
    /// The folder of lock files through which the machine's engines share its cores
    /// (default: `docusnap-ocr-cores` in the temporary folder).
    pub const CORES_DIR: &str = "DOCUSNAP_OCR_CORES_DIR";
    /// Longest side of the detection input, 1024-2000 px (default 1600).
    pub const DET_LONG_SIDE: &str = "DOCUSNAP_OCR_DET_LONG_SIDE";
    /// `accurate` (default) or `fast`: how pages are read when nothing else says
    /// (docs/ocr.md, "The fast mode").
    pub const MODE: &str = "DOCUSNAP_OCR_MODE";
}

/// Roots that may hold `lib/` and `models/`, in the order they are tried.
fn candidate_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/opt")];
    // A binary under <checkout>/target/<profile>/ finds <checkout>/models/opt.
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(|dir| dir.join("models/opt")));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(|dir| dir.join("models/opt")));
    }
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/opt"));
    roots
}

/// The ONNX Runtime library: `DOCUSNAP_ORT_LIB`, else the first root that has it.
pub fn locate_runtime() -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(path) = std::env::var_os(var::ORT_LIB) {
        return Ok(path.into());
    }
    let tried: Vec<PathBuf> = candidate_roots().into_iter().map(|root| root.join("lib").join(ORT_LIBRARY)).collect();
    tried.iter().find(|p| p.is_file()).cloned().ok_or(tried)
}

/// PDFium: `DOCUSNAP_PDFIUM_LIB`, else the first root that has it.
pub fn locate_pdfium() -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(path) = std::env::var_os(var::PDFIUM_LIB) {
        return Ok(path.into());
    }
    let tried: Vec<PathBuf> = candidate_roots().into_iter().map(|root| root.join("lib").join(PDFIUM_LIBRARY)).collect();
    tried.iter().find(|p| p.is_file()).cloned().ok_or(tried)
}

/// The folder of one model set: under `DOCUSNAP_MODELS_DIR`, else the first root that has it.
pub fn locate_models(set: ModelSet) -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(dir) = std::env::var_os(var::MODELS_DIR) {
        return Ok(PathBuf::from(dir).join(set.name()));
    }
    let tried: Vec<PathBuf> = candidate_roots().into_iter().map(|root| root.join("models").join(set.name())).collect();
    tried.iter().find(|dir| dir.join(set.files()[0]).is_file()).cloned().ok_or(tried)
}

/// Threads for ONNX Runtime: what the environment says, else the CPUs this process may
/// use (affinity and cgroup quotas included).
pub fn threads() -> usize {
    std::env::var(var::THREADS).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(machine_cores)
}

/// The CPUs this process may use (affinity and cgroup quotas included): on Lambda, its
/// environment's; locally, the machine's, which every engine on it shares.
pub fn machine_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Where the engines of this machine (or Lambda environment) share its cores: see
/// [`crate::cores`].
pub fn cores_dir() -> PathBuf {
    std::env::var_os(var::CORES_DIR)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| std::env::temp_dir().join("docusnap-ocr-cores"), PathBuf::from)
}

/// ONNX Runtime's switch for its Linux telemetry. Microsoft's builds since 1.29, the
/// pinned wheel's included, start a 1DS uploader when the environment is created: events
/// about every session (model file and graph names, producer, hashes, errors, run counts)
/// kept in `~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db` and sent to
/// `mobile.events.data.microsoft.com` whenever the network allows, as a Lambda with a
/// NAT gateway's does. A document service sends nothing about its work to a third party.
/// Only this variable stops the uploader (or `CI`, which no deployment sets): the API's
/// `DisableTelemetryEvents` comes after the environment exists and leaves it running.
pub const DISABLE_TELEMETRY: (&str, &str) = ("ORT_DISABLE_TELEMETRY", "1");

/// Sets [`DISABLE_TELEMETRY`] in this process's environment. A process-wide setting read
/// when ONNX Runtime starts, so each binary calls it first thing in `main`, before any
/// other thread exists (setting a variable races with other threads reading them).
pub fn disable_telemetry() {
    let (name, value) = DISABLE_TELEMETRY;
    std::env::set_var(name, value);
}

/// Free heap glibc may keep at its top before returning it to the system: 1 MiB.
/// A page's buffers (the detector's input and activations, crops) are freed when the page
/// is done; glibc's default keeps growing this threshold to the largest buffer freed, so a
/// process kept its largest page's memory. Measured on the 80 receipts (40 at a time):
/// 35-60 MB lower peak, about 2% slower.
pub const HEAP_TRIM_THRESHOLD: usize = 1 << 20;

/// Buffers above this are mapped on their own, so they go back at once when freed:
/// glibc's own starting value, held there (glibc would raise it to the largest buffer
/// freed, up to 32 MiB, and a page's buffers would then stay in the heap).
pub const HEAP_MMAP_THRESHOLD: usize = 128 << 10;

/// Applies [`HEAP_TRIM_THRESHOLD`] and [`HEAP_MMAP_THRESHOLD`] to this process (glibc
/// only; elsewhere nothing). A process-wide setting, so the binaries call it, not the
/// engine, and they call it once the engine is loaded: building a session frees and
/// allocates weight-sized buffers again and again, and with the thresholds fixed each is
/// mapped and faulted in afresh. Measured (`docusnap-ocr`, 2 cores): the engine loaded in
/// 214 ms median with the thresholds set before it, 172 ms after (6 cold starts each); the
/// price is what the load leaves in the heap, a 23 MB higher peak on 20 pages (512
/// against 490 MB), still well under faster-paddle's.
pub fn bound_heap_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters; any value is accepted.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD as libc::c_int);
    }
}

/// `detail`, with the dynamic loader's own reason for refusing `library` when it gives one
/// (`ort` says only "dlopen failed"; the loader names the missing dependency, e.g.
/// `libstdc++.so.6: cannot open shared object file`).
pub fn with_loader_reason(detail: String, library: &Path) -> String {
    match loader_reason(library) {
        Some(reason) if !detail.contains(&reason) => format!("{detail}: {reason}"),
        _ => detail,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn loader_reason(library: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(library.as_os_str().as_bytes()).ok()?;
    // SAFETY: dlopen with a NUL-terminated path; a handle it returns is closed at once, and
    // dlerror's string is copied before any other loader call.
    unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if !handle.is_null() {
            libc::dlclose(handle);
            return None;
        }
        let reason = libc::dlerror();
        (!reason.is_null()).then(|| std::ffi::CStr::from_ptr(reason).to_string_lossy().into_owned())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn loader_reason(_library: &Path) -> Option<String> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod loader_tests {
    use super::*;

    #[test]
    fn a_library_the_loader_refuses_is_reported_with_the_loaders_reason() {
        let dir = std::env::temp_dir().join(format!("docusnap-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_a_library = dir.join("libnot.so");
        std::fs::write(&not_a_library, b"not an ELF file").unwrap();
        let detail = with_loader_reason("dlopen failed".into(), &not_a_library);
        assert!(detail.starts_with("dlopen failed: ") && detail.contains("libnot.so"), "{detail}");
        let missing = with_loader_reason("dlopen failed".into(), &dir.join("libmissing.so"));
        assert!(missing.contains("No such file"), "{missing}");
        // A library that loads adds nothing.
        let libc_path = Path::new("libc.so.6");
        assert_eq!(with_loader_reason("x".into(), libc_path), "x");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
