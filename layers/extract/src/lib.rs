//! Extraction: turning OCR text into what the client asked for.
//!
//! So far the offline rules extractor's value finders ([`values`]): dates, money amounts
//! and totals, e-mail addresses and phone numbers in OCR lines. The extractors that build
//! results from them (and the LLM client) come next; the result shapes and their checks
//! are in `docusnap_core::results`.

pub mod values;
