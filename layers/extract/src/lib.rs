//! Extraction: turning OCR text into what the client asked for.
//!
//! So far: the offline rules extractor ([`rules`]: doc, form and fill results from OCR
//! lines alone) and its value finders ([`values`]: dates, money amounts and totals,
//! e-mail addresses, phone numbers). The LLM client, the prompts and the extract function
//! come next; the result shapes and their checks are in `docusnap_core::results`.

pub mod rules;
pub mod values;
