#![forbid(unsafe_code)]
//! The ETL job.
