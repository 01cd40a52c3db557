//! The bytes a connection has read but nobody has consumed yet.
//!
//! The storage is initialized once and reused: reads go straight into it
//! (no zeroing of spare capacity per read), and consuming bytes moves an
//! index instead of shifting memory.

/// Read-ahead buffer: `data[start..end]` is unconsumed.
#[derive(Debug, Default)]
pub(crate) struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Mark `n` bytes as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Take everything unconsumed out as an owned vector.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let out = self.filled().to_vec();
        self.consume(out.len());
        out
    }

    /// Room for at least `want / 4` and up to `want` more bytes, as a slice
    /// to read into; call `commit` with what was read.
    pub(crate) fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.data.len() - self.end < want / 4 {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < want / 4 {
                self.data.resize(self.end + want, 0);
            }
        }
        let stop = self.data.len().min(self.end + want);
        &mut self.data[self.end..stop]
    }

    pub(crate) fn commit(&mut self, n: usize) {
        self.end += n;
    }

    /// Give the storage back (an idle connection should cost no buffer).
    pub(crate) fn release_memory(&mut self) {
        if self.is_empty() {
            *self = ReadBuffer::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consumes_and_compacts() {
        let mut b = ReadBuffer::default();
        b.spare(8)[..5].copy_from_slice(b"hello");
        b.commit(5);
        b.consume(2);
        assert_eq!(b.filled(), b"llo");
        let room = b.spare(64);
        assert!(room.len() >= 16);
        room[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.take_all(), b"lloabc");
        assert!(b.is_empty());
    }
}
