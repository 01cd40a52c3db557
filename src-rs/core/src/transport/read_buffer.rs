//! The bytes a connection has read but nobody has consumed yet.
//!
//! Reads append into the vector's spare capacity, which is never zeroed
//! (plain reads go through `Socket::recv_into`), and consuming bytes moves
//! an index instead of shifting memory. Idle connections give the storage
//! back, so a parked connection costs no buffer.

/// Read-ahead buffer: `data[start..]` is unconsumed.
#[derive(Debug, Default)]
pub(crate) struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
}

impl ReadBuffer {
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.data.len()
    }

    /// Mark `n` bytes as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.data.len());
        if self.is_empty() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// Take everything unconsumed out as an owned vector (no copy when
    /// nothing was consumed before).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.data);
        if self.start > 0 {
            out.drain(..self.start);
            self.start = 0;
        }
        out
    }

    /// The vector to append up to `want` new bytes to, with at least
    /// `want / 4` of spare capacity (consumed bytes are dropped first).
    pub(crate) fn appendable(&mut self, want: usize) -> &mut Vec<u8> {
        if self.data.capacity() - self.data.len() < want / 4 {
            if self.start > 0 {
                self.data.drain(..self.start);
                self.start = 0;
            }
            self.data.reserve(want);
        }
        &mut self.data
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
        b.appendable(8).extend_from_slice(b"hello");
        b.consume(2);
        assert_eq!(b.filled(), b"llo");
        let v = b.appendable(64);
        assert!(v.capacity() - v.len() >= 16);
        v.extend_from_slice(b"abc");
        assert_eq!(b.take_all(), b"lloabc");
        assert!(b.is_empty());
    }
}
