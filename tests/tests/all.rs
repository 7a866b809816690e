//! The tests crate's integration tests as one binary, each file a module under its own
//! name: one link instead of 26 (each binary linked the AWS SDK, the engine and the
//! functions again, about 50 MB and seconds of a 2-core build apiece). nextest still runs
//! every test in a process of its own.

mod architecture;
mod batch;
mod bedrock;
mod chain;
mod concurrency;
mod contract;
mod docs;
mod documents;
mod events;
mod fanout;
mod fuzz;
mod images;
mod jwt;
mod llm_client;
mod logs;
mod no_plaintext;
mod ocr_function;
mod pdf;
mod protocol;
mod quotas;
mod redaction;
mod rules_rendered;
mod runtime;
mod template_wiring;
mod v2;
mod wiring;
