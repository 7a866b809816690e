//! How a page is read: [`Mode::Accurate`], the default, or [`Mode::Fast`] for bulk
//! ingestion. The fast mode changes three things, chosen as combinations on part of
//! `../shared/data` and checked on the rest (docs/ocr.md, "The fast mode"):
//!
//! - **PP-OCRv4's detector.** It finds the lines in about a third of PP-OCRv6 small's
//!   time at the same input size (receipt-sized input, one thread: 126 ms against 419),
//!   and the crops it gives read as well with PP-OCRv6 small's recogniser. Detection is
//!   about 40% of an accurate receipt's time.
//! - **A smaller detection input** ([`FAST_DET_SIZE`]).
//! - **Crops read narrower** ([`FAST_SQUEEZE`]). Recognition is the rest, and its cost
//!   follows the crop's width: the network's convolutions are most of it. Print as
//!   narrow as 0.8 of its width still leaves the recogniser two or more of its columns
//!   per character.
//!
//! The recogniser, its model and the page's orientation handling stay the same, so a
//! page's text comes out in the same form either way.

use crate::detect::DetSize;
use crate::model::ModelSet;

/// How a page is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// As accurately as the engine reads.
    #[default]
    Accurate,
    /// About twice the pages a second, with a CER no worse than the PP-OCRv4 reference's
    /// (rapidocr_onnxruntime 1.4.4).
    Fast,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Accurate, Mode::Fast];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Accurate => "accurate",
            Mode::Fast => "fast",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// Its place in [`Mode::ALL`] (the engine keeps a detector per mode).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The set whose detector the fast mode runs (its folder is the accurate set's sibling).
pub const FAST_DETECTOR_SET: ModelSet = ModelSet::PpOcrV4;

/// The fast mode's detection input: a page at its own resolution up to 1280 px on its
/// long side, and a small one not enlarged unless its short side is under 384 px. The
/// accurate mode enlarges receipts to 512 px across and keeps 1600 px of a large page;
/// at 1280 px an A4 page's 10-point line is still about 15 px tall, which the detector
/// finds. At 1024 px receipts' CER rose by a third on the development half.
pub const FAST_DET_SIZE: DetSize = DetSize { short_min: 384, long_max: 1280 };

/// Each crop is read this many times as wide as its text stands. Narrower trades
/// accuracy on forms first: their typewriter print is already wide for its height, and
/// at 0.7 its CER passed the PP-OCRv4 reference's on the development half.
pub const FAST_SQUEEZE: f32 = 0.8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_name_and_only_by_name() {
        for mode in Mode::ALL {
            assert_eq!(Mode::parse(mode.name()), Some(mode));
            assert_eq!(mode.to_string(), mode.name());
        }
        assert_eq!(Mode::parse("Fast"), None);
        assert_eq!(Mode::parse(""), None);
        assert_eq!(Mode::default(), Mode::Accurate);
        assert!(Mode::ALL.iter().enumerate().all(|(i, mode)| mode.index() == i));
    }
}
