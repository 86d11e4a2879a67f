//! Text formatting shared by the commands: UTC times, byte sizes, aligned tables.
//!
//! Hand-written rather than a date crate: the CLI only ever prints a UTC timestamp,
//! which is one well-known days-to-civil conversion.

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
///
/// ```text
/// 0             -> 1970-01-01 00:00:00
/// 1764096376000 -> 2025-11-25 18:46:16
/// ```
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days`, for non-negative day counts: shift the epoch
/// to 0000-03-01 so that leap days fall at the end of each 400-year era's years.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097; // 400-year eras of 146097 days
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0 = March ... 11 = February
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Precision loss above 2^53 bytes is irrelevant for one decimal.
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Which side of its column a cell sticks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers, so their digits line up.
    Right,
}

/// A text table whose columns are as wide as their widest cell.
#[derive(Debug)]
pub struct Table {
    /// `(header, alignment)` per column.
    columns: Vec<(&'static str, Align)>,
    /// One vector of cells per row, as many as there are columns.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns and no rows.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty, extra cells are ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The header line and the rows, columns two spaces apart, no trailing spaces.
    pub fn render(&self) -> String {
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_string();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                self.rows
                    .iter()
                    .map(|row| cell(row, i).chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let text = cell(row, i);
                let pad = " ".repeat(widths[i].saturating_sub(text.chars().count()));
                match align {
                    Align::Left => {
                        line.push_str(&text);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(&text);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_match_known_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00"); // a 400-year leap day
        assert_eq!(utc(1_764_096_376_999), "2025-11-25 18:46:16");
        assert_eq!(utc(1_798_761_599_000), "2026-12-31 23:59:59");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00"); // 2100 is no leap year
        assert!(utc(u64::MAX).starts_with("584556019-04-03 ")); // no overflow
    }

    #[test]
    fn byte_sizes_pick_a_unit() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let mut table = Table::new(&[
            ("id", Align::Left),
            ("steps", Align::Right),
            ("name", Align::Left),
        ]);
        table.row(vec!["order-42".into(), "8".into(), "checkout".into()]);
        table.row(vec!["x".into(), "12".into(), "a".into()]);
        assert_eq!(
            table.render(),
            "id        steps  name\norder-42      8  checkout\nx            12  a\n"
        );
    }
}
