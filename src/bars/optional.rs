//! A column whose values may be absent (vwap, trade counts): the values, plus which
//! are present only once one is not.
//!
//! A `Vec<Option<f64>>` takes 16 bytes a value, twice the value itself, and Arrow wants
//! values and validity apart anyway, so every write converted it. The API's pages send
//! every bar's vwap and trade count, so here such a column is its values alone (8 bytes
//! a value, handed to Arrow as they are); a presence list appears with the first absent
//! value.

use std::ops::Range;

/// Values of one column, some possibly absent (see the module docs). Absent values are
/// held as `T::default()`; equality compares the values as `Option`s.
#[derive(Debug, Clone, Default)]
pub struct Optional<T> {
    values: Vec<T>,
    /// Whether each value is present; `None` while all are.
    present: Option<Vec<bool>>,
}

impl<T: Copy + Default> Optional<T> {
    /// `n` absent values.
    pub fn absent(n: usize) -> Self {
        let mut column = Optional::default();
        column.push_absent(n);
        column
    }

    /// The presence list, made (every value so far present) if there was none yet.
    fn presence_list(&mut self) -> &mut Vec<bool> {
        let n = self.values.len();
        self.present.get_or_insert_with(|| vec![true; n])
    }

    /// Number of values, present or not.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the column holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `i`: `None` when absent or out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        let v = *self.values.get(i)?;
        match &self.present {
            Some(p) if !p[i] => None,
            _ => Some(v),
        }
    }

    /// Appends one value.
    #[inline]
    pub fn push(&mut self, v: Option<T>) {
        if v.is_none() || self.present.is_some() {
            self.presence_list().push(v.is_some());
        }
        self.values.push(v.unwrap_or_default());
    }

    /// Appends `n` absent values.
    pub fn push_absent(&mut self, n: usize) {
        let len = self.values.len() + n;
        self.presence_list().resize(len, false);
        self.values.resize(len, T::default());
    }

    /// Replaces the value at `i` (which must be in range).
    pub fn set(&mut self, i: usize, v: Option<T>) {
        self.values[i] = v.unwrap_or_default();
        if v.is_none() || self.present.is_some() {
            self.presence_list()[i] = v.is_some();
        }
    }

    /// Iterates the values in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<T>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The values, `T::default()` where absent.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Whether each value is present; `None` when all are known to be (a list is kept
    /// once a value was absent, so it may also say all are).
    pub fn presence(&self) -> Option<&[bool]> {
        self.present.as_deref()
    }

    /// The values and presence, as [`Optional::values`] and [`Optional::presence`] give
    /// them.
    pub fn into_parts(self) -> (Vec<T>, Option<Vec<bool>>) {
        (self.values, self.present)
    }

    /// Makes room for `n` more values.
    pub fn reserve(&mut self, n: usize) {
        self.values.reserve(n);
        if let Some(p) = &mut self.present {
            p.reserve(n);
        }
    }

    /// Gives back the room beyond the values held.
    pub fn shrink_to_fit(&mut self) {
        self.values.shrink_to_fit();
        if let Some(p) = &mut self.present {
            p.shrink_to_fit();
        }
    }

    /// Removes every value, keeping the room of the values.
    pub fn clear(&mut self) {
        self.values.clear();
        self.present = None;
    }

    /// Keeps the first `n` values.
    pub fn truncate(&mut self, n: usize) {
        self.values.truncate(n);
        if let Some(p) = &mut self.present {
            p.truncate(n);
        }
    }

    /// Splits off the values from `at` on (returned), keeping the first `at`.
    pub fn split_off(&mut self, at: usize) -> Self {
        Optional {
            values: self.values.split_off(at),
            present: self.present.as_mut().map(|p| p.split_off(at)),
        }
    }

    /// A copy of the values in `range`.
    pub fn slice(&self, range: Range<usize>) -> Self {
        Optional {
            values: self.values[range.clone()].to_vec(),
            present: self.present.as_ref().map(|p| p[range].to_vec()),
        }
    }

    /// Appends all of `other`.
    pub fn extend_from(&mut self, other: &Self) {
        if self.present.is_some() || other.present.is_some() {
            let p = self.presence_list();
            match &other.present {
                Some(q) => p.extend_from_slice(q),
                None => p.resize(p.len() + other.len(), true),
            }
        }
        self.values.extend_from_slice(&other.values);
    }
}

impl<T: Copy + Default> Extend<Option<T>> for Optional<T> {
    fn extend<I: IntoIterator<Item = Option<T>>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.reserve(iter.size_hint().0);
        for v in iter {
            self.push(v);
        }
    }
}

impl<T: Copy + Default> FromIterator<Option<T>> for Optional<T> {
    fn from_iter<I: IntoIterator<Item = Option<T>>>(iter: I) -> Self {
        let mut column = Optional::default();
        column.extend(iter);
        column
    }
}

impl<T: Copy + Default> From<Vec<Option<T>>> for Optional<T> {
    fn from(values: Vec<Option<T>>) -> Self {
        values.into_iter().collect()
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for Optional<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Copy + Default + PartialEq> PartialEq<Vec<Option<T>>> for Optional<T> {
    fn eq(&self, other: &Vec<Option<T>>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_of_present_values_keeps_no_presence_list() {
        let c: Optional<i64> = [Some(1), Some(2)].into_iter().collect();
        assert!(c.presence().is_none());
        assert_eq!(c.values(), &[1, 2]);
    }

    #[test]
    fn absent_values_read_back_as_none_wherever_they_arrive() {
        let mut c: Optional<f64> = Optional::default();
        c.push(Some(1.5));
        c.push(None);
        c.push(Some(2.5));
        assert_eq!(c, vec![Some(1.5), None, Some(2.5)]);
        assert_eq!(c.presence(), Some(&[true, false, true][..]));
        assert_eq!(c.values(), &[1.5, 0.0, 2.5]);
        c.set(0, None);
        c.set(1, Some(4.0));
        assert_eq!(c, vec![None, Some(4.0), Some(2.5)]);
        let mut d: Optional<f64> = vec![Some(1.0), Some(2.0)].into();
        d.set(1, None);
        assert_eq!(d, vec![Some(1.0), None]);
        assert_eq!(c.get(3), None);
    }

    #[test]
    fn extend_split_slice_and_truncate_keep_values_with_their_presence() {
        let full: Optional<i64> = vec![Some(1), Some(2)].into();
        let gaps: Optional<i64> = vec![None, Some(4)].into();
        let mut a = full.clone();
        a.extend_from(&gaps);
        assert_eq!(a, vec![Some(1), Some(2), None, Some(4)]);
        let mut b = gaps.clone();
        b.extend_from(&full);
        assert_eq!(b, vec![None, Some(4), Some(1), Some(2)]);
        assert_eq!(a.slice(1..3), vec![Some(2), None]);
        let tail = a.split_off(2);
        assert_eq!((a.clone(), tail), (full.clone(), gaps));
        b.truncate(1);
        assert_eq!(b, vec![None]);
        assert_eq!(Optional::<i64>::absent(2), vec![None, None]);
        let mut c = full.clone();
        c.push_absent(2);
        assert_eq!(c, vec![Some(1), Some(2), None, None]);
        assert_ne!(full, vec![Some(1)]);
    }
}
