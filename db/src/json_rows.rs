//! Many rows read as one on SQLite.
//!
//! sqlx's SQLite driver steps a statement on a thread of its own and hands every row to
//! the async side through a channel, one wake-up of a runtime thread per row. Under
//! concurrent listings of 100 volumes that hand-over, not SQLite, was most of the API's
//! CPU. On SQLite a listing therefore asks SQLite to fold the page into one JSON text
//! (`json_group_array(json_array(<columns>))` over the page's own query, which keeps its
//! filters, order, offset and limit) and decodes it here, positionally, into the same
//! models the generic path returns. PostgreSQL and MySQL read rows as before.
//!
//! [`json_row!`] lists a model's fields in column order; the compiler refuses a list that
//! misses a field, and `tests::json_rows_equal_generic_rows` compares both paths on the
//! same data. A text the decoder cannot read (a timestamp in a format of someone else's)
//! makes the read fall back to the generic path, so this never changes an answer.

use std::fmt;
use std::marker::PhantomData;

use chrono::NaiveDateTime;
use sea_orm::sea_query::{SelectStatement, SqliteQueryBuilder};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryTrait, Statement};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::Deserializer;

use crate::error::Result;
use crate::Db;

/// Counts of folded reads and of their fallbacks (see [`Db::folded_reads`]).
#[derive(Debug, Default)]
pub(crate) struct FoldCounters {
    pub(crate) reads: std::sync::atomic::AtomicU64,
    pub(crate) fallbacks: std::sync::atomic::AtomicU64,
}

/// A model that can be read from one element of the folded page: a JSON array of its
/// columns, in [`JsonRow::COLUMNS`] order.
pub(crate) trait JsonRow: Sized {
    /// Column names, in the order [`JsonRow::decode`] reads them.
    const COLUMNS: &'static [&'static str];
    /// Reads the columns from `seq`.
    fn decode<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error>;
}

/// One cell of a row, as SQLite stores it and `json_array` writes it.
pub(crate) trait Cell: Sized {
    /// Reads the next element of `seq` as this cell.
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error>;
}

fn required<'de, A: SeqAccess<'de>, T>(v: Option<T>) -> std::result::Result<T, A::Error> {
    v.ok_or_else(|| de::Error::custom("row has fewer columns than the model"))
}

impl Cell for String {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        required::<A, _>(seq.next_element()?)
    }
}

impl Cell for i32 {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        required::<A, _>(seq.next_element()?)
    }
}

impl Cell for Option<i32> {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        required::<A, _>(seq.next_element()?)
    }
}

impl Cell for i64 {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        required::<A, _>(seq.next_element()?)
    }
}

/// SQLite has no booleans: sqlx stores 0 and 1.
impl Cell for bool {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        let n: i64 = required::<A, _>(seq.next_element()?)?;
        Ok(n != 0)
    }
}

/// A timestamp as sqlx writes one (`%F %T%.f`), or with a `T` between date and time.
fn timestamp<E: de::Error>(s: &str) -> std::result::Result<NaiveDateTime, E> {
    if let Some(t) = timestamp_by_hand(s) {
        return Ok(t);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|e| E::custom(format!("timestamp {s:?}: {e}")))
}

/// `YYYY-MM-DD HH:MM:SS[.f{1,9}]` (or `T` for the space) without chrono's pattern
/// parser, which reads its pattern again on every call; anything else (a leap second,
/// an offset) is `None` and left to chrono.
fn timestamp_by_hand(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        let mut n = 0u32;
        for &c in b.get(from..to)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b' ' && b[10] != b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut nanos = 0;
    if b.len() > 19 {
        let frac = b.len() - 20;
        if b[19] != b'.' || frac == 0 || frac > 9 {
            return None;
        }
        nanos = digits(20, b.len())? * 10u32.pow(9 - frac as u32);
    }
    chrono::NaiveDate::from_ymd_opt(digits(0, 4)? as i32, digits(5, 7)?, digits(8, 10)?)?
        .and_hms_nano_opt(digits(11, 13)?, digits(14, 16)?, digits(17, 19)?, nanos)
}

/// A text cell decoded by `parse`, borrowed from the input where it has no escapes.
struct Parsed<T, F>(F, PhantomData<T>);

impl<'de, T, F: FnOnce(&str) -> std::result::Result<T, String>> DeserializeSeed<'de>
    for Parsed<T, F>
{
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Option<T>, D::Error> {
        struct V<T, F>(F, PhantomData<T>);
        impl<'de, T, F: FnOnce(&str) -> std::result::Result<T, String>> Visitor<'de> for V<T, F> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text or null")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Option<T>, E> {
                (self.0)(s).map(Some).map_err(E::custom)
            }
        }
        d.deserialize_any(V(self.0, PhantomData))
    }
}

fn next_parsed<'de, A: SeqAccess<'de>, T>(
    seq: &mut A,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, A::Error> {
    required::<A, _>(seq.next_element_seed(Parsed(parse, PhantomData))?)
}

fn some<'de, A: SeqAccess<'de>, T>(v: Option<T>) -> std::result::Result<T, A::Error> {
    v.ok_or_else(|| de::Error::custom("null in a column that is never null"))
}

impl Cell for NaiveDateTime {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        some::<A, _>(next_parsed(seq, |s| {
            timestamp::<de::value::Error>(s).map_err(|e| e.to_string())
        })?)
    }
}

impl Cell for Option<NaiveDateTime> {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        next_parsed(seq, |s| {
            timestamp::<de::value::Error>(s).map_err(|e| e.to_string())
        })
    }
}

impl Cell for Option<String> {
    fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        required::<A, _>(seq.next_element()?)
    }
}

/// Status columns: their OpenStack spelling, through `FromStr`.
macro_rules! status_cells {
    ($($t:ty),* $(,)?) => {$(
        impl Cell for $t {
            fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
                some::<A, _>(next_parsed(seq, |s| s.parse::<$t>().map_err(|e| e.to_string()))?)
            }
        }
        impl Cell for Option<$t> {
            fn next<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
                next_parsed(seq, |s| s.parse::<$t>().map_err(|e| e.to_string()))
            }
        }
    )*};
}

status_cells!(
    cinder_common::status::VolumeStatus,
    cinder_common::status::AttachStatus,
    cinder_common::status::SnapshotStatus,
    cinder_common::status::BackupStatus,
);

/// Implements [`JsonRow`] for a model: its fields, in column order. A field left out
/// does not compile.
macro_rules! json_row {
    ($model:path { $($field:ident),* $(,)? }) => {
        impl $crate::json_rows::JsonRow for $model {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            fn decode<'de, A: serde::de::SeqAccess<'de>>(
                seq: &mut A,
            ) -> std::result::Result<Self, A::Error> {
                // Fields are evaluated in the order written: the column order.
                Ok(Self { $($field: $crate::json_rows::Cell::next(seq)?),* })
            }
        }
    };
}

json_row!(crate::entity::volumes::Model {
    id,
    project_id,
    user_id,
    display_name,
    display_description,
    size,
    status,
    attach_status,
    availability_zone,
    volume_type_id,
    snapshot_id,
    source_volid,
    image_id,
    backup_id,
    host,
    cluster_name,
    provider_location,
    provider_id,
    bootable,
    multiattach,
    encryption_key_id,
    migration_status,
    replication_status,
    previous_status,
    use_quota,
    group_id,
    service_uuid,
    shared_targets,
    scheduled_at,
    launched_at,
    terminated_at,
    rbd_parent,
    clone_depth,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

json_row!(crate::entity::volume_metadata::Model {
    id,
    volume_id,
    key,
    value,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

json_row!(crate::entity::snapshot_metadata::Model {
    id,
    snapshot_id,
    key,
    value,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

json_row!(crate::entity::backup_metadata::Model {
    id,
    backup_id,
    key,
    value,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

json_row!(crate::entity::backups::Model {
    id,
    volume_id,
    snapshot_id,
    project_id,
    user_id,
    host,
    availability_zone,
    display_name,
    display_description,
    container,
    status,
    fail_reason,
    service_metadata,
    service,
    size,
    object_count,
    parent_id,
    num_dependent_backups,
    data_timestamp,
    restore_volume_id,
    temp_volume_id,
    temp_snapshot_id,
    is_incremental,
    encryption_key_id,
    progress,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

json_row!(crate::entity::snapshots::Model {
    id,
    volume_id,
    project_id,
    user_id,
    display_name,
    display_description,
    status,
    progress,
    volume_size,
    provider_location,
    provider_id,
    encryption_key_id,
    volume_type_id,
    group_snapshot_id,
    use_quota,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

json_row!(crate::entity::volume_attachment::Model {
    id,
    volume_id,
    attached_host,
    instance_uuid,
    mountpoint,
    attach_time,
    detach_time,
    attach_mode,
    attach_status,
    connection_info,
    connector,
    created_at,
    updated_at,
    deleted_at,
    deleted,
});

/// A volume row of a detailed page, followed by its metadata `[[key, value], ...]`,
/// its type's name and its live attachments (`[]` for detached volumes).
pub(crate) struct DetailedVolume {
    pub(crate) volume: crate::entity::volumes::Model,
    pub(crate) metadata: Vec<(String, Option<String>)>,
    pub(crate) type_name: Option<String>,
    pub(crate) attachments: Vec<crate::entity::volume_attachment::Model>,
}

impl DetailedVolume {
    /// The SQL after the volume's columns, over its `page` row.
    pub(crate) fn extra_sql() -> [String; 3] {
        use cinder_common::status::AttachStatus;
        let attachment_cols: Vec<String> =
            <crate::entity::volume_attachment::Model as JsonRow>::COLUMNS
                .iter()
                .map(|c| format!("a.\"{c}\""))
                .collect();
        [
            "json((SELECT json_group_array(json_array(m.\"key\", m.\"value\")) \
             FROM \"volume_metadata\" AS m \
             WHERE m.\"volume_id\" = page.\"id\" AND m.\"deleted\" = 0))"
                .to_string(),
            "(SELECT t.\"name\" FROM \"volume_types\" AS t WHERE t.\"id\" = page.\"volume_type_id\")"
                .to_string(),
            format!(
                "CASE WHEN page.\"attach_status\" = '{detached}' THEN json('[]') \
                 ELSE json((SELECT json_group_array(json_array({cols})) \
                 FROM \"volume_attachment\" AS a \
                 WHERE a.\"volume_id\" = page.\"id\" AND a.\"deleted\" = 0)) END",
                detached = AttachStatus::Detached.as_str(),
                cols = attachment_cols.join(", "),
            ),
        ]
    }
}

impl JsonRow for DetailedVolume {
    const COLUMNS: &'static [&'static str] = <crate::entity::volumes::Model as JsonRow>::COLUMNS;
    fn decode<'de, A: SeqAccess<'de>>(seq: &mut A) -> std::result::Result<Self, A::Error> {
        let volume = crate::entity::volumes::Model::decode(seq)?;
        let Nested(metadata) = required::<A, _>(seq.next_element()?)?;
        let type_name = required::<A, _>(seq.next_element()?)?;
        let Nested(Rows(attachments)) = required::<A, _>(seq.next_element()?)?;
        Ok(DetailedVolume {
            volume,
            metadata,
            type_name,
            attachments,
        })
    }
}

/// A nested JSON value, embedded as JSON or (when SQLite dropped its JSON subtype on
/// the way) as a text holding it.
struct Nested<T>(T);

impl<'de, T: de::DeserializeOwned> de::Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: de::DeserializeOwned> Visitor<'de> for V<T> {
            type Value = Nested<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON array, or a text holding one")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Nested<T>, A::Error> {
                T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Nested)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Nested<T>, E> {
                serde_json::from_str(s).map(Nested).map_err(E::custom)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The folded page: a JSON array of rows.
pub(crate) struct Rows<T>(pub(crate) Vec<T>);

impl<'de, T: JsonRow> de::Deserialize<'de> for Rows<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Row<T>(T);
        impl<'de, T: JsonRow> de::Deserialize<'de> for Row<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                struct V<T>(PhantomData<T>);
                impl<'de, T: JsonRow> Visitor<'de> for V<T> {
                    type Value = Row<T>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a row as an array of its columns")
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> std::result::Result<Row<T>, A::Error> {
                        let row = T::decode(&mut seq)?;
                        if seq.next_element::<de::IgnoredAny>()?.is_some() {
                            return Err(de::Error::custom("row has more columns than the model"));
                        }
                        Ok(Row(row))
                    }
                }
                d.deserialize_seq(V(PhantomData))
            }
        }
        struct V<T>(PhantomData<T>);
        impl<'de, T: JsonRow> Visitor<'de> for V<T> {
            type Value = Rows<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Rows<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Row(r)) = seq.next_element::<Row<T>>()? {
                    out.push(r);
                }
                Ok(Rows(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// `SELECT json_group_array(json_array(<columns>)) FROM (<inner>)`: the rows of `inner`
/// in its order (SQLite runs a subquery with LIMIT or ORDER BY under an aggregate as a
/// co-routine that yields rows in order; the equality test pins it).
///
/// `extra` are further SQL expressions after the columns, over the same `page` row.
fn folded(inner: &SelectStatement, columns: &[&str], extra: &[&str]) -> Statement {
    let (sql, values) = inner.build(SqliteQueryBuilder);
    let mut cols = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            cols.push_str(", ");
        }
        cols.push_str("page.\"");
        cols.push_str(c);
        cols.push('"');
    }
    for e in extra {
        cols.push_str(", ");
        cols.push_str(e);
    }
    Statement::from_sql_and_values(
        DbBackend::Sqlite,
        format!("SELECT json_group_array(json_array({cols})) FROM ({sql}) AS page"),
        values,
    )
}

impl Db {
    /// Whether listings are folded (SQLite, unless [`Db::reading_row_by_row`]).
    pub(crate) fn folds(&self) -> bool {
        self.fold && self.conn.get_database_backend() == DbBackend::Sqlite
    }

    /// Runs `select` folded, with `extra` expressions after the columns of each row, and
    /// decodes the rows as `R`; `None` when the text did not decode (counted and logged:
    /// the caller reads row by row).
    pub(crate) async fn folded_rows<R: JsonRow>(
        &self,
        select: &SelectStatement,
        columns: &[&str],
        extra: &[&str],
    ) -> Result<Option<Vec<R>>> {
        use std::sync::atomic::Ordering::Relaxed;
        self.folds.reads.fetch_add(1, Relaxed);
        let text: Option<String> = match self
            .conn
            .query_one_raw(folded(select, columns, extra))
            .await?
        {
            Some(row) => row.try_get_by_index(0)?,
            None => None,
        };
        match serde_json::from_str::<Rows<R>>(text.as_deref().unwrap_or("[]")) {
            Ok(Rows(rows)) => Ok(Some(rows)),
            Err(e) => {
                self.folds.fallbacks.fetch_add(1, Relaxed);
                tracing::warn!(
                    error = %e,
                    "a folded SQLite page did not decode; reading its rows one by one"
                );
                Ok(None)
            }
        }
    }

    /// Every row of `select`: folded into one JSON text on SQLite, row by row elsewhere.
    pub(crate) async fn all_rows<E>(&self, select: sea_orm::Select<E>) -> Result<Vec<E::Model>>
    where
        E: EntityTrait,
        E::Model: JsonRow + Send + Sync,
    {
        if self.folds() {
            if let Some(rows) = self
                .folded_rows(select.as_query(), E::Model::COLUMNS, &[])
                .await?
            {
                return Ok(rows);
            }
        }
        Ok(select.all(&self.conn).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_lists_match_the_entities() {
        use super::JsonRow;
        use sea_orm::{EntityTrait, Iterable};
        fn names<E: EntityTrait>() -> Vec<String> {
            E::Column::iter()
                .map(|c| sea_orm::IdenStatic::as_str(&c).to_string())
                .collect()
        }
        use crate::entity::*;
        assert_eq!(volumes::Model::COLUMNS, names::<volumes::Entity>());
        assert_eq!(
            volume_metadata::Model::COLUMNS,
            names::<volume_metadata::Entity>()
        );
        assert_eq!(
            snapshot_metadata::Model::COLUMNS,
            names::<snapshot_metadata::Entity>()
        );
        assert_eq!(snapshots::Model::COLUMNS, names::<snapshots::Entity>());
        assert_eq!(backups::Model::COLUMNS, names::<backups::Entity>());
        assert_eq!(
            backup_metadata::Model::COLUMNS,
            names::<backup_metadata::Entity>()
        );
        assert_eq!(
            volume_attachment::Model::COLUMNS,
            names::<volume_attachment::Entity>()
        );
    }
}

#[cfg(test)]
mod timestamp_tests {
    use chrono::NaiveDateTime;

    #[test]
    fn timestamps_by_hand_read_as_chrono_reads_them() {
        for s in [
            "2026-12-04 22:08:39",
            "2026-12-04 22:08:39.5",
            "2026-12-04 22:08:39.123456",
            "2026-12-04T22:08:39.123456789",
            "1999-01-31 00:00:00.000001",
            "2024-02-29 23:59:59.999999",
        ] {
            let chrono = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .unwrap();
            assert_eq!(super::timestamp_by_hand(s), Some(chrono), "{s}");
        }
        // Left to chrono: not dates, leap seconds, offsets, empty fractions.
        for s in [
            "2023-02-29 00:00:00",
            "2026-12-04 23:59:60",
            "2026-12-04 22:08:39+00:00",
            "2026-12-04 22:08:39.",
            "2026-12-04 22:08:3x",
            "2026-12-04",
        ] {
            assert_eq!(super::timestamp_by_hand(s), None, "{s}");
        }
    }
}
