//! Everything that talks to S3. The client is built once ([`build_client`]: credentials, the
//! HTTP stack of [`http`] with its [`timeout`]s, [`dns`] and [`bwlimit`], retries); a [`Store`]
//! is one bucket and prefix with one method per S3 call s3ferry makes; every failure becomes an
//! [`S3Error`] with its class; request bodies are counted as they are sent ([`body`]).
//!
//! Requests are built here and nowhere else, so every upload carries the same headers (Content-MD5,
//! Content-Type, ACL, SSE, storage class) and every call is counted. The SDK's retry layer is the
//! only one that retries transport and 5xx errors; an error returned from here is final.
//! No message produced here contains credentials or signed URLs.

pub mod body;
pub mod bwlimit;
mod client;
pub mod dns;
mod error;
pub mod http;
mod store;
pub mod timeout;
mod types;

pub use client::{ClientError, ClientOptions, build_client};
pub use error::S3Error;
pub use store::{Body, Store};
pub use types::*;
