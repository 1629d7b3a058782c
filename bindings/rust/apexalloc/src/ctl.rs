//! `apex_ctl`: named statistics, options and commands, in the spirit of jemalloc's `mallctl`.
//!
//! ```
//! use apexalloc::ctl;
//!
//! let allocated: usize = ctl::read("stats.allocated")?;
//! let version: String = ctl::read("version")?;
//! assert_eq!(version, apexalloc::version());
//!
//! let old: usize = ctl::read("opt.superblock_cache")?;
//! ctl::write("opt.superblock_cache", 16usize)?;
//! assert_eq!(ctl::read::<usize>("opt.superblock_cache")?, 16);
//! ctl::write("opt.superblock_cache", old)?;
//!
//! ctl::run("heap.collect")?;
//!
//! // Errors name the key.
//! let e = ctl::read::<usize>("stats.no_such_key").unwrap_err();
//! assert_eq!(e, ctl::CtlError::UnknownKey { key: "stats.no_such_key".into() });
//!
//! for key in ctl::keys() {
//!     println!("{:32} {:?} {}", key.name, key.ty, key.description);
//! }
//! # let _ = allocated;
//! # Ok::<(), ctl::CtlError>(())
//! ```
//!
//! Keys whose registry name contains `<i>` are families: `stats.bins.<i>.count` is read as
//! `stats.bins.3.count`, for `0 .. index_count`.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::mem::{size_of, MaybeUninit};
use core::ptr;
use std::ffi::CString;
use std::fmt;

use apexalloc_sys as sys;

use crate::report::libc_errno::{EINVAL, ENOENT, EPERM};

/// The type of a ctl key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CtlType {
    /// `bool` (a C `int`, 0 or 1).
    Bool,
    /// `usize` (a C `size_t`).
    Size,
    /// `String` (a static C string).
    String,
    /// No value: an action, run with [`run`].
    Command,
}

impl CtlType {
    fn from_raw(raw: c_int) -> Option<CtlType> {
        match raw as u32 {
            sys::APEX_CTL_BOOL => Some(CtlType::Bool),
            sys::APEX_CTL_SIZE => Some(CtlType::Size),
            sys::APEX_CTL_STRING => Some(CtlType::String),
            sys::APEX_CTL_COMMAND => Some(CtlType::Command),
            _ => None,
        }
    }
}

/// Why a ctl call failed; every variant names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CtlError {
    /// No such key, or an index out of range in a `<i>` family (`ENOENT`).
    UnknownKey {
        /// The name asked for.
        key: String,
    },
    /// The key's value has another type than the one asked for (reading a `usize` key as a
    /// `String`, running a key that is not a command, reading or writing a command).
    WrongType {
        /// The name asked for.
        key: String,
        /// The key's type in the registry.
        key_type: CtlType,
        /// The type the call used.
        requested: CtlType,
    },
    /// The value is out of the key's range, or the call is otherwise invalid (`EINVAL`).
    InvalidValue {
        /// The name asked for.
        key: String,
    },
    /// A write to a read-only key (`EPERM`).
    ReadOnly {
        /// The name asked for.
        key: String,
    },
}

impl CtlError {
    /// The key the failed call named.
    pub fn key(&self) -> &str {
        match self {
            CtlError::UnknownKey { key }
            | CtlError::WrongType { key, .. }
            | CtlError::InvalidValue { key }
            | CtlError::ReadOnly { key } => key,
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::UnknownKey { key } => write!(f, "apex_ctl: unknown key \"{key}\""),
            CtlError::WrongType { key, key_type, requested } => {
                write!(f, "apex_ctl: key \"{key}\" is a {key_type:?}, not a {requested:?}")
            }
            CtlError::InvalidValue { key } => write!(f, "apex_ctl: invalid value or call for key \"{key}\""),
            CtlError::ReadOnly { key } => write!(f, "apex_ctl: key \"{key}\" is read-only"),
        }
    }
}

impl std::error::Error for CtlError {}

/// One entry of the key registry (`apex_ctl_info_t`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyInfo {
    /// The key, e.g. `"stats.allocated"`, or a family such as `"stats.bins.<i>.count"`.
    pub name: String,
    /// The value's type.
    pub ty: CtlType,
    /// Whether the key can be written (options) or run (commands).
    pub writable: bool,
    /// `"bytes"`, `"count"`, `"ms"`, ... or `""`.
    pub unit: String,
    /// One line.
    pub description: String,
    /// For a `<i>` family: how many indices; 0 otherwise.
    pub index_count: usize,
    /// The environment variable read at start-up (options).
    pub env: Option<String>,
}

impl KeyInfo {
    /// Whether `name` is this key, or a member of this family (`stats.bins.3.count` of
    /// `stats.bins.<i>.count`; the index range is not checked).
    pub fn matches(&self, name: &str) -> bool {
        match self.name.split_once("<i>") {
            None => self.name == name,
            Some((prefix, suffix)) => name
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())),
        }
    }
}

unsafe fn owned(text: *const c_char) -> Option<String> {
    (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
}

fn info(index: usize) -> Option<KeyInfo> {
    let mut raw = MaybeUninit::<sys::apex_ctl_info_t>::zeroed();
    let rc = unsafe { sys::apex_ctl_info(index, raw.as_mut_ptr(), size_of::<sys::apex_ctl_info_t>()) };
    if rc != 0 {
        return None;
    }
    let raw = unsafe { raw.assume_init_ref() };
    Some(KeyInfo {
        name: unsafe { owned(raw.name) }.unwrap_or_default(),
        ty: CtlType::from_raw(raw.type_)?,
        writable: raw.writable != 0,
        unit: unsafe { owned(raw.unit) }.unwrap_or_default(),
        description: unsafe { owned(raw.description) }.unwrap_or_default(),
        index_count: raw.index_count,
        env: unsafe { owned(raw.env) },
    })
}

/// Every key of the registry, in its order (`apex_ctl_count` / `apex_ctl_info`).
pub fn keys() -> impl Iterator<Item = KeyInfo> {
    (0..unsafe { sys::apex_ctl_count() }).filter_map(info)
}

/// The registry entry of `name` (or of its family).
pub fn key_info(name: &str) -> Option<KeyInfo> {
    keys().find(|k| k.matches(name))
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for bool {}
    impl Sealed for usize {}
    impl Sealed for String {}
}

/// A type a ctl value can be read as: `bool`, `usize` or `String`.
pub trait CtlRead: sealed::Sealed + Sized {
    /// The registry type this Rust type reads.
    const TYPE: CtlType;
    #[doc(hidden)]
    fn read_raw(name: &CStr) -> Result<Self, c_int>;
}

/// A type a ctl value can be written as: `bool` or `usize`.
pub trait CtlWrite: CtlRead {
    #[doc(hidden)]
    fn write_raw(&self, name: &CStr) -> c_int;
}

fn read_scalar<T: Copy>(name: &CStr, mut value: T) -> Result<T, c_int> {
    let mut len = size_of::<T>();
    let rc = unsafe {
        sys::apex_ctl(name.as_ptr(), (&mut value as *mut T).cast::<c_void>(), &mut len, ptr::null_mut(), 0)
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(rc)
    }
}

fn write_scalar<T: Copy>(name: &CStr, mut value: T) -> c_int {
    unsafe {
        sys::apex_ctl(name.as_ptr(), ptr::null_mut(), ptr::null_mut(), (&mut value as *mut T).cast(), size_of::<T>())
    }
}

impl CtlRead for usize {
    const TYPE: CtlType = CtlType::Size;
    fn read_raw(name: &CStr) -> Result<Self, c_int> {
        read_scalar(name, 0usize)
    }
}

impl CtlWrite for usize {
    fn write_raw(&self, name: &CStr) -> c_int {
        write_scalar(name, *self)
    }
}

impl CtlRead for bool {
    const TYPE: CtlType = CtlType::Bool;
    fn read_raw(name: &CStr) -> Result<Self, c_int> {
        read_scalar(name, 0 as c_int).map(|v| v != 0)
    }
}

impl CtlWrite for bool {
    fn write_raw(&self, name: &CStr) -> c_int {
        write_scalar(name, *self as c_int)
    }
}

impl CtlRead for String {
    const TYPE: CtlType = CtlType::String;
    fn read_raw(name: &CStr) -> Result<Self, c_int> {
        let text = read_scalar(name, ptr::null::<c_char>())?;
        Ok(unsafe { owned(text) }.unwrap_or_default())
    }
}

/// Maps the C error of a call on `name` that used type `requested`.
fn error(name: &str, rc: c_int, requested: CtlType) -> CtlError {
    let key = name.to_owned();
    match rc {
        ENOENT => CtlError::UnknownKey { key },
        EPERM => CtlError::ReadOnly { key },
        EINVAL => match key_info(name) {
            Some(info) if info.ty != requested => CtlError::WrongType { key, key_type: info.ty, requested },
            _ => CtlError::InvalidValue { key },
        },
        _ => CtlError::InvalidValue { key },
    }
}

/// The C name, and a type check against the registry: a `String` key and a `usize` key have the
/// same C size, so apex_ctl alone cannot tell them apart.
fn prepare(name: &str, requested: CtlType) -> Result<CString, CtlError> {
    let c_name = CString::new(name).map_err(|_| CtlError::UnknownKey { key: name.to_owned() })?;
    match key_info(name) {
        Some(info) if info.ty != requested => {
            Err(CtlError::WrongType { key: name.to_owned(), key_type: info.ty, requested })
        }
        _ => Ok(c_name),
    }
}

/// Reads key `name` as `T` (`bool`, `usize` or `String`).
///
/// # Errors
/// [`CtlError::UnknownKey`], or [`CtlError::WrongType`] when the key holds another type.
pub fn read<T: CtlRead>(name: &str) -> Result<T, CtlError> {
    let c_name = prepare(name, T::TYPE)?;
    T::read_raw(&c_name).map_err(|rc| error(name, rc, T::TYPE))
}

/// Writes `value` to option `name`; a failed write changes nothing.
///
/// # Errors
/// [`CtlError::UnknownKey`], [`CtlError::WrongType`], [`CtlError::ReadOnly`] (a statistic, or an
/// option that can only be set from the environment at start-up), [`CtlError::InvalidValue`]
/// (out of the option's range).
pub fn write<T: CtlWrite>(name: &str, value: T) -> Result<(), CtlError> {
    let c_name = prepare(name, T::TYPE)?;
    match value.write_raw(&c_name) {
        0 => Ok(()),
        rc => Err(error(name, rc, T::TYPE)),
    }
}

/// Runs command `name` (`"heap.collect"`, `"stats.reset"`).
///
/// # Errors
/// [`CtlError::UnknownKey`], or [`CtlError::WrongType`] when the key is not a command.
pub fn run(name: &str) -> Result<(), CtlError> {
    let c_name = prepare(name, CtlType::Command)?;
    let rc = unsafe { sys::apex_ctl(c_name.as_ptr(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0) };
    match rc {
        0 => Ok(()),
        rc => Err(error(name, rc, CtlType::Command)),
    }
}
