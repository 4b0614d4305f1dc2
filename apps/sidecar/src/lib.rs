//! The flags, in a library so that the fuzz targets can parse them as the binary does.

pub mod flags;
