//! The SHA-256 of an object whose parts arrive in parallel and out of order (a registry
//! blob is named by it): each part is hashed as soon as every part before it has been, by
//! whichever thread is free, so the bytes are read once for both their part MD5s and their
//! digest. Uploads, bucket copies and restores all prove blobs with it.

use sha2::{Digest, Sha256};

/// The SHA-256 of a file whose parts are read in parallel and out of order: each part is
/// hashed as soon as every part before it has been, by whichever reader is free, so the file
/// is read once for both its part MD5s and its digest. Parts waiting their turn keep their
/// buffers, and so their share of the budget; the budget hands out buffers in request order,
/// so the part next in line already has one.
pub struct InOrderSha {
    state: std::sync::Mutex<ShaState>,
}

struct ShaState {
    /// Index of the next part to hash.
    next: u64,
    waiting: std::collections::BTreeMap<u64, bytes::Bytes>,
    /// `None` while a thread is hashing.
    hasher: Option<Sha256>,
}

impl Default for InOrderSha {
    fn default() -> Self {
        InOrderSha::new()
    }
}

impl InOrderSha {
    pub fn new() -> InOrderSha {
        InOrderSha {
            state: std::sync::Mutex::new(ShaState {
                next: 0,
                waiting: Default::default(),
                hasher: Some(Sha256::new()),
            }),
        }
    }

    /// Hand over part `index`, then hash every part that is next in line, unless another
    /// thread is already doing so (it will take this part too). Blocking.
    pub fn offer(&self, index: u64, data: bytes::Bytes) {
        let mut s = self.state.lock().expect("sha state");
        s.waiting.insert(index, data);
        while let Some(mut h) = s.hasher.take() {
            let next = s.next;
            let Some(part) = s.waiting.remove(&next) else {
                s.hasher = Some(h);
                return;
            };
            s.next += 1;
            drop(s);
            h.update(&part);
            drop(part);
            s = self.state.lock().expect("sha state");
            s.hasher = Some(h);
        }
    }

    /// The hex digest, once all `parts` have been hashed; `None` if any has not.
    pub fn finish(&self, parts: u64) -> Option<String> {
        let mut s = self.state.lock().expect("sha state");
        if s.next != parts || !s.waiting.is_empty() {
            return None;
        }
        s.hasher.take().map(|h| hex::encode(h.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn in_order_sha_hashes_parts_offered_out_of_order_from_many_threads() {
        let parts: Vec<bytes::Bytes> = (0..64u8)
            .map(|i| bytes::Bytes::from(vec![i; 1000 + i as usize]))
            .collect();
        let want = hex::encode(Sha256::digest(parts.concat()));
        let sha = Arc::new(InOrderSha::new());
        // Offer in a scrambled order, four threads at once.
        let mut order: Vec<u64> = (0..64).collect();
        order.sort_by_key(|i| (i * 37) % 64);
        std::thread::scope(|s| {
            for chunk in order.chunks(16) {
                let (sha, parts) = (&sha, &parts);
                s.spawn(move || {
                    for &i in chunk.iter().rev() {
                        sha.offer(i, parts[i as usize].clone());
                    }
                });
            }
        });
        assert_eq!(sha.finish(64).as_deref(), Some(want.as_str()));

        // A missing part means no digest, never the digest of what happened to arrive.
        let sha = InOrderSha::new();
        sha.offer(0, parts[0].clone());
        sha.offer(2, parts[2].clone());
        assert_eq!(sha.finish(3), None);
    }
}
