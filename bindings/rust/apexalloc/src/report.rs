//! `print_stats` and `heap_map`: the C core's text, JSON and SVG output into any `io::Write`.

use core::ffi::{c_char, c_int, c_void};
use std::any::Any;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use apexalloc_sys as sys;

/// Output format of [`print_stats`] and [`heap_map`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Readable text ([`print_stats`] only).
    Text,
    /// One JSON object.
    Json,
    /// An SVG picture ([`heap_map`] only).
    Svg,
}

impl Format {
    fn raw(self) -> c_int {
        (match self {
            Format::Text => sys::APEX_FORMAT_TEXT,
            Format::Json => sys::APEX_FORMAT_JSON,
            Format::Svg => sys::APEX_FORMAT_SVG,
        }) as c_int
    }
}

struct Sink<'a> {
    out: &'a mut dyn io::Write,
    error: Option<io::Error>,
    panic: Option<Box<dyn Any + Send>>,
}

/// The C side calls this with no allocator lock held, so the writer may allocate. A panic in the
/// writer is caught here (it must not cross the C frames) and resumed once the C call returns.
unsafe extern "C" fn write_to_sink(opaque: *mut c_void, text: *const c_char, len: usize) {
    let sink = &mut *opaque.cast::<Sink<'_>>();
    if sink.error.is_some() || sink.panic.is_some() || len == 0 {
        return;
    }
    let bytes = core::slice::from_raw_parts(text.cast::<u8>(), len);
    match catch_unwind(AssertUnwindSafe(|| sink.out.write_all(bytes))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => sink.error = Some(e),
        Err(payload) => sink.panic = Some(payload),
    }
}

type Printer = unsafe extern "C" fn(sys::apex_write_fn, *mut c_void, c_int) -> c_int;

fn run(printer: Printer, out: &mut dyn io::Write, format: Format, what: &str) -> io::Result<()> {
    let mut sink = Sink { out, error: None, panic: None };
    let rc = unsafe { printer(Some(write_to_sink), (&mut sink as *mut Sink<'_>).cast(), format.raw()) };
    if let Some(payload) = sink.panic {
        resume_unwind(payload);
    }
    if let Some(e) = sink.error {
        return Err(e);
    }
    match rc {
        0 => Ok(()),
        libc_errno::EINVAL => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} cannot be written as {format:?}"),
        )),
        libc_errno::ENOMEM => Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("{what}: no memory for the snapshot"),
        )),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// The errno values the C core returns (Linux numbering).
pub(crate) mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ENOMEM: i32 = 12;
    pub const EINVAL: i32 = 22;
}

/// Writes ApexAlloc's statistics (global figures, size classes, fragmentation, live heaps) to
/// `out`, as [`Format::Text`] or [`Format::Json`] (`apex_stats_print`).
///
/// ```
/// let mut text = Vec::new();
/// apexalloc::print_stats(&mut text, apexalloc::Format::Text).unwrap();
/// assert!(String::from_utf8(text).unwrap().contains("statistics"));
///
/// let mut json = Vec::new();
/// apexalloc::print_stats(&mut json, apexalloc::Format::Json).unwrap();
/// assert!(json.starts_with(b"{"));
/// ```
///
/// # Errors
/// The first error of `out`; [`io::ErrorKind::InvalidInput`] for [`Format::Svg`];
/// [`io::ErrorKind::OutOfMemory`] when the snapshot's scratch memory cannot be mapped.
pub fn print_stats<W: io::Write + ?Sized>(out: &mut W, format: Format) -> io::Result<()> {
    let mut out = out;
    run(sys::apex_stats_print, &mut out, format, "the statistics")
}

/// Writes the heap map, every superblock and block with its size class, owner and occupancy, to
/// `out` as [`Format::Svg`] (a picture) or [`Format::Json`] (`apex_heap_map`; the picture is
/// explained in the project's docs/API.md).
///
/// ```
/// let mut svg = Vec::new();
/// apexalloc::heap_map(&mut svg, apexalloc::Format::Svg).unwrap();
/// assert!(String::from_utf8(svg).unwrap().contains("<svg"));
/// ```
///
/// # Errors
/// As [`print_stats`]; [`Format::Text`] is [`io::ErrorKind::InvalidInput`].
pub fn heap_map<W: io::Write + ?Sized>(out: &mut W, format: Format) -> io::Result<()> {
    let mut out = out;
    run(sys::apex_heap_map, &mut out, format, "the heap map")
}
