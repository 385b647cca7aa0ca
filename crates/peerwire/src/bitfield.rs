//! A set of piece indices, stored as BitTorrent sends it: high bit of byte 0 is piece 0.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    #[error("bitfield is {got} bytes; {pieces} pieces need {want}")]
    WrongLength { got: usize, want: usize, pieces: u32 },
    #[error("bitfield has spare bits set past piece {pieces}")]
    SpareBits { pieces: u32 },
}

impl Bitfield {
    pub fn new(len: u32) -> Self {
        Bitfield { bits: vec![0; (len as usize).div_ceil(8)], len }
    }
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }
    /// A bitfield received for a torrent of `len` pieces.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let want = (len as usize).div_ceil(8);
        if bytes.len() != want {
            return Err(BitfieldError::WrongLength { got: bytes.len(), want, pieces: len });
        }
        let spare = (want * 8) as u32 - len;
        if spare > 0 && bytes[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBits { pieces: len });
        }
        Ok(Bitfield { bits: bytes.to_vec(), len })
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn has(&self, i: u32) -> bool {
        i < self.len && self.bits[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }
    /// Sets piece `i`; returns false (and changes nothing) if `i` is out of range.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        self.bits[(i / 8) as usize] |= 0x80 >> (i % 8);
        true
    }
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }
    pub fn is_complete(&self) -> bool {
        self.count() == self.len
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.has(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_spare_bits() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count(), 2);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 9]);
        assert_eq!(Bitfield::from_bytes(&[0x80, 0x40], 10).unwrap(), b);
        assert_eq!(Bitfield::from_bytes(&[0x80, 0x60], 10), Err(BitfieldError::SpareBits { pieces: 10 }));
        assert!(matches!(Bitfield::from_bytes(&[0x80], 10), Err(BitfieldError::WrongLength { .. })));
        assert!(Bitfield::full(10).is_complete());
        assert!(Bitfield::from_bytes(&[], 0).unwrap().is_complete());
    }
}
