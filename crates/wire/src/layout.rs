//! Fixed arrays written to and read from a buffer whose size the caller matched to the
//! layout.

/// Writes fixed arrays into a buffer whose size the caller matched to the layout.
pub(crate) struct Writer<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) at: usize,
}

impl Writer<'_> {
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.at.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
        }
        self.at = end;
    }
}

/// Reads fixed arrays from a buffer whose size the caller matched to the layout.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) at: usize,
}

impl Reader<'_> {
    pub(crate) fn take<const N: usize>(&mut self) -> [u8; N] {
        let end = self.at.saturating_add(N);
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(self.at..end) {
            out.copy_from_slice(src);
        }
        self.at = end;
        out
    }
}
