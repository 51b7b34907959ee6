//! What the remote commands print: aligned tables and `field  value` lists for people, the
//! server's JSON as it is for machines (`--json`).

use serde_json::Value;

/// A cell's text: strings bare, `null` as `-`, lists joined by commas, anything else as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

/// Prints `rows` under `headers`, each column as wide as its widest cell; the last column is
/// not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(headers, rows));
}

fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (text, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(text);
            } else {
                out.push_str(&format!("{text:<width$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The rows of `list["data"]`, one per item, with the cells of `fields` (dotted paths).
pub fn rows(list: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    list["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| fields.iter().map(|f| cell(pointer(item, f))).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn pointer<'a>(item: &'a Value, dotted: &str) -> &'a Value {
    dotted.split('.').fold(item, |v, key| &v[key])
}

/// Prints an object's fields as `field  value` lines, aligned; nested objects as JSON.
pub fn fields(object: &Value) {
    let Some(map) = object.as_object() else {
        println!("{}", cell(object));
        return;
    };
    let rows: Vec<Vec<String>> = map.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    for row in rows {
        println!("{:<width$}  {}", row[0], row[1]);
    }
}

/// Prints `next_cursor` on stderr when there is a next page, so a table on stdout stays clean.
pub fn more(list: &Value) {
    if let Some(cursor) = list["next_cursor"].as_str() {
        eprintln!("more: --cursor {cursor}");
    }
}

/// Prints `value` as the server sent it.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON prints")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let text = render_table(
            &["ID", "STATUS", "URL"],
            &[
                vec!["wh_1".into(), "active".into(), "https://a".into()],
                vec!["wh_22222".into(), "inactive".into(), "https://b".into()],
            ],
        );
        assert_eq!(
            text,
            "ID        STATUS    URL\nwh_1      active    https://a\nwh_22222  inactive  https://b\n"
        );
    }

    #[test]
    fn cells_read_as_people_write_them() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["a.b", "c.*"])), "a.b,c.*");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!({"k": 1})), "{\"k\":1}");
    }
}
