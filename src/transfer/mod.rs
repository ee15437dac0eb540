//! Moving one item and proving it arrived: a file to an object ([`upload`], with the
//! [`multipart`] session), an object to a file ([`download`], written only through
//! [`confine`]), an object to an object ([`relay`]), and the proofs ([`verify`]) that `check`
//! and a rerun share.

pub mod confine;
pub mod download;
pub mod multipart;
pub mod relay;
pub mod upload;
pub mod verify;
