//! The IR text form: parser.
