//! Reading a dataset on S3 the way `barsmith status` reads a folder, without its bars:
//! one listing of the data prefix (keys, sizes, ETags), each footer by a ranged GET
//! of the object's tail, and for `--verify` the timestamp column by ranged GETs of its
//! chunks. The checks are the local store's ([`crate::store::verify`]) on what these
//! reads return.

use std::path::PathBuf;

use futures_util::{StreamExt, TryStreamExt};
use parquet::file::metadata::ParquetMetaData;

use crate::calendar::DateRange;
use crate::s3::ObjectInfo;
use crate::store::check_ticker;
use crate::store::coverage::{FileFacts, Record};
use crate::store::decode::{ByteRanges, read_timestamps_in, timestamp_ranges};
use crate::store::error::StoreError;
use crate::store::footer::{Footer, TAIL_GUESS, Tail, first_take, parse_tail};
use crate::store::status::scan::Tree;
use crate::store::verify::{
    Damage, Finding, agrees, thorough_footer, timestamps_verdict, years_of,
};

use super::{CONCURRENT_READS, S3Dataset};

/// The data objects of a dataset on S3 by ticker and year, and the keys that are not
/// `ticker=T/year=Y/*.parquet` (relative to the data prefix).
pub(crate) type Listing = Tree<ObjectInfo>;

impl S3Dataset {
    /// Lists the data prefix once, sorting its keys into bar objects and strays.
    pub(crate) async fn list_data(&self) -> Result<Listing, StoreError> {
        self.list_under(&self.location.data_prefix()).await
    }

    /// The ranges of `ticker` known complete, as [`crate::store::Store::checked_claims`]
    /// gives them locally: the claims of its coverage record whose objects are still as
    /// written (one listing of the ticker's objects, when the record describes any),
    /// the years that failed the check, and that listing.
    pub(crate) async fn checked_coverage(
        &self,
        ticker: &str,
    ) -> Result<(Vec<DateRange>, Vec<Finding>, Listing), StoreError> {
        let record = self.coverage(ticker).await?;
        if record.files.values().all(FileFacts::is_empty) {
            return Ok((record.complete, Vec::new(), Listing::default()));
        }
        let prefix = format!("{}ticker={ticker}/", self.location.data_prefix());
        let listing = self.list_under(&prefix).await?;
        let (complete, findings) = self.checked_claims(ticker, record, &listing).await?;
        Ok((complete, findings, listing))
    }

    /// The objects below `prefix` (inside the data prefix) by ticker and year, and the
    /// keys there that are not bar objects (relative to the data prefix).
    async fn list_under(&self, prefix: &str) -> Result<Listing, StoreError> {
        let data = self.location.data_prefix();
        let mut tree = Listing::default();
        for obj in self.bucket.list(prefix).await? {
            let rel = obj.key.strip_prefix(&data).unwrap_or(&obj.key).to_string();
            match bar_object(&rel) {
                Some((ticker, year)) => {
                    let years = tree.files.entry(ticker).or_default();
                    years.entry(year).or_default().push(obj);
                }
                None => tree.strays.push(PathBuf::from(rel)),
            }
        }
        Ok(tree)
    }

    /// The footer of `obj` (its size from the listing): one ranged GET of its tail,
    /// two when the footer is longer than [`TAIL_GUESS`].
    pub(crate) async fn footer(&self, obj: &ObjectInfo) -> Result<Footer, String> {
        let meta = self.footer_meta(obj).await?;
        Ok(Footer::of(&meta, obj.size))
    }

    async fn footer_meta(&self, obj: &ObjectInfo) -> Result<ParquetMetaData, String> {
        let len = obj.size;
        let mut take = first_take(len, TAIL_GUESS);
        for _ in 0..2 {
            let tail = self
                .bucket
                .get_range(&obj.key, len.saturating_sub(take)..len)
                .await
                .map_err(|e| e.to_string())?;
            match parse_tail(&tail, len)? {
                Tail::Meta(meta) => return Ok(meta),
                Tail::Needs(n) => take = n,
            }
        }
        Err("the footer's length changed while it was read".into())
    }

    /// The timestamps of `obj`, whose footer is `meta`: a ranged GET per row group of
    /// the timestamp column's chunk, decoded without the other columns.
    async fn timestamps(
        &self,
        obj: &ObjectInfo,
        meta: ParquetMetaData,
    ) -> Result<Vec<i64>, StoreError> {
        let mut parts = Vec::new();
        for range in timestamp_ranges(&meta) {
            let start = range.start;
            parts.push((start, self.bucket.get_range(&obj.key, range).await?));
        }
        let name = self.location.path(&obj.key);
        read_timestamps_in(meta, ByteRanges::new(obj.size, parts), &name)
    }

    /// The claims of `ticker`'s `record` that hold, and the recorded years whose objects
    /// fail the quick check (their claims left out), as [`crate::store::Store::checked_claims`]:
    /// the listed size against the recorded one, the footer read only when they differ.
    pub(crate) async fn checked_claims(
        &self,
        ticker: &str,
        mut record: Record,
        listing: &Listing,
    ) -> Result<(Vec<DateRange>, Vec<Finding>), StoreError> {
        let mut findings = Vec::new();
        for (&year, facts) in &record.files {
            if facts.is_empty() {
                continue; // no object was written; one written later would only add bars
            }
            let damage = match self.object_of(listing, ticker, year) {
                None => Some(Damage::Missing {
                    recorded_rows: facts.rows,
                }),
                Some(obj) if obj.size == facts.bytes => None,
                Some(obj) => match self.footer(obj).await {
                    Ok(found) => agrees(facts, &found),
                    Err(e) => Some(Damage::Unreadable(e)),
                },
            };
            findings.extend(damage.map(|damage| finding(ticker, year, damage)));
        }
        for f in &findings {
            record.withdraw_year(f.year);
        }
        Ok((record.complete, findings))
    }

    /// Every damaged year of `ticker` by the thorough check, as
    /// [`crate::store::Store::verify`]: each year `record` claims or describes must have
    /// its object if rows were recorded, whose footer must open and agree with the
    /// record and whose timestamps must increase strictly.
    pub(crate) async fn verify(
        &self,
        ticker: &str,
        record: &Record,
        listing: &Listing,
    ) -> Result<Vec<Finding>, StoreError> {
        let mut years = years_of(&record.complete);
        years.extend(record.files.keys());
        let checks = years.into_iter().map(|year| async move {
            let damage = self
                .verify_year(
                    record.files.get(&year),
                    self.object_of(listing, ticker, year),
                )
                .await;
            Ok::<_, StoreError>(damage.map(|d| finding(ticker, year, d)))
        });
        let found: Vec<Option<Finding>> = futures_util::stream::iter(checks)
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn verify_year(
        &self,
        facts: Option<&FileFacts>,
        obj: Option<&ObjectInfo>,
    ) -> Option<Damage> {
        let meta = match obj {
            Some(obj) => Some(self.footer_meta(obj).await),
            None => None,
        };
        let footer = meta.as_ref().zip(obj).map(|(m, obj)| {
            m.as_ref()
                .map(|m| Footer::of(m, obj.size))
                .map_err(Clone::clone)
        });
        if let Err(verdict) = thorough_footer(facts, footer) {
            return verdict;
        }
        let (Some(Ok(meta)), Some(obj)) = (meta, obj) else {
            return None; // thorough_footer decided every other case
        };
        timestamps_verdict(self.timestamps(obj, meta).await)
    }

    /// The listed object of (`ticker`, `year`) at its own key, if any.
    pub(crate) fn object_of<'a>(
        &self,
        listing: &'a Listing,
        ticker: &str,
        year: i16,
    ) -> Option<&'a ObjectInfo> {
        let key = self.location.data_key(ticker, year);
        listing
            .files
            .get(ticker)?
            .get(&year)?
            .iter()
            .find(|o| o.key == key)
    }

    /// The footers of `objects`, [`CONCURRENT_READS`] at a time, in order.
    pub(crate) async fn footers(&self, objects: &[&ObjectInfo]) -> Vec<Result<Footer, String>> {
        futures_util::stream::iter(objects)
            .map(|obj| self.footer(obj))
            .buffered(CONCURRENT_READS)
            .collect()
            .await
    }

    /// The coverage records of `tickers`, [`CONCURRENT_READS`] at a time, in order.
    pub async fn records(&self, tickers: &[String]) -> Result<Vec<Record>, StoreError> {
        futures_util::stream::iter(tickers)
            .map(|t| self.coverage(t))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
    }
}

/// (ticker, year) of a key `ticker=T/year=Y/NAME.parquet` relative to the data prefix.
fn bar_object(rel: &str) -> Option<(String, i16)> {
    let mut parts = rel.split('/');
    let ticker = parts.next()?.strip_prefix("ticker=")?;
    let year = parts.next()?.strip_prefix("year=")?.parse::<i16>().ok()?;
    let name = parts.next()?;
    let plain = parts.next().is_none() && name.len() > ".parquet".len();
    (plain && name.ends_with(".parquet") && check_ticker(ticker).is_ok())
        .then(|| (ticker.to_string(), year))
}

fn finding(ticker: &str, year: i16, damage: Damage) -> Finding {
    Finding {
        ticker: ticker.to_string(),
        year,
        damage,
        moved_to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_objects_are_ticker_year_parquet_and_the_rest_strays() {
        assert_eq!(
            bar_object("ticker=BRK.A/year=2004/BRK.A_2004.parquet"),
            Some(("BRK.A".into(), 2004))
        );
        for stray in [
            "notes.txt",
            "ticker=AAPL/notes.txt",
            "ticker=AAPL/year=2004/AAPL_2004.csv",
            "ticker=AAPL/year=x/AAPL_2004.parquet",
            "ticker=/year=2004/x.parquet",
            "ticker=AAPL/year=2004/sub/AAPL_2004.parquet",
            "ticker=AAPL/year=2004/.parquet",
            "_SUCCESS",
        ] {
            assert_eq!(bar_object(stray), None, "{stray}");
        }
    }
}
