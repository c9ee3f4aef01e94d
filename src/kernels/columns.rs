//! How the SIMD kernels find the columns of the matrix they stream: at a fixed stride, or
//! picked out of another matrix by index (a minibatch drawn from a split stored one sample per
//! column, read in place instead of copied).

use std::marker::PhantomData;

/// The column starts of a column-major operand: column `j` begins at `base + j * stride`, or,
/// with an index, at `base + index[j] * stride`. Every column holds (at least) the rows the
/// kernel reads; the constructors' callers vouch for that.
#[derive(Clone, Copy)]
pub struct Columns<'a, T> {
    base: *const T,
    stride: usize,
    index: Option<&'a [usize]>,
    _data: PhantomData<&'a [T]>,
}

impl<'a, T> Columns<'a, T> {
    /// The columns of `data` read with column stride `stride`.
    pub fn strided(data: &'a [T], stride: usize) -> Self {
        Columns {
            base: data.as_ptr(),
            stride,
            index: None,
            _data: PhantomData,
        }
    }

    /// Columns `index[0], index[1], ...` of `data` (column stride `stride`), in that order.
    pub fn gathered(data: &'a [T], stride: usize, index: &'a [usize]) -> Self {
        Columns {
            base: data.as_ptr(),
            stride,
            index: Some(index),
            _data: PhantomData,
        }
    }

    /// The same columns as another element type of the same size (`f32` for a `T` that is
    /// `f32`): only the pointee type is renamed.
    pub fn cast<U>(self) -> Columns<'a, U> {
        Columns {
            base: self.base.cast(),
            stride: self.stride,
            index: self.index,
            _data: PhantomData,
        }
    }

    /// The start of column `j`.
    ///
    /// # Safety
    /// `j` must be a column of the operand: below the index's length when there is one, and
    /// inside the data otherwise.
    #[inline(always)]
    pub unsafe fn at(&self, j: usize) -> *const T {
        let column = match self.index {
            // SAFETY: the caller keeps `j` below the index's length.
            Some(index) => unsafe { *index.get_unchecked(j) },
            None => j,
        };
        // Forming the address cannot be undefined behavior with `wrapping_add`; the caller's
        // contract keeps every read through it inside the data.
        self.base.wrapping_add(column * self.stride)
    }
}
