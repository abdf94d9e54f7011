//! Backend API JSON saved to files, read one element at a time.
//!
//! `GET /v1/users` answers a bare array; the organization endpoints answer
//! `{"data": [...], "total_count": N}`. Either shape is accepted for every
//! entity. The file is never loaded whole: serde walks the outer array and hands
//! each element over as raw JSON text, so memory holds one element at a time.
//!
//! Each element is then read into its typed form; when that fails the error
//! names the element's JSON path down to the bad field
//! (`$[3].email_addresses[0].created_at`), found by `serde_path_to_error`.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use super::ImportError;

/// Call `each(path, element)` for every element of the file's array, in order.
/// `path` is the element's JSON path (`$[i]` or `$.data[i]`). An error from
/// `each` stops the walk and is returned as is.
pub fn for_each_element(
    file: &Path,
    name: &str,
    mut each: impl FnMut(String, &RawValue) -> Result<(), ImportError>,
) -> Result<u64, ImportError> {
    let f = File::open(file).map_err(|e| ImportError::io(file, e))?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, f));
    let mut stop = None;
    let mut count = 0;
    let result = de::Deserializer::deserialize_any(
        &mut de,
        Top {
            each: &mut each,
            stop: &mut stop,
            count: &mut count,
        },
    )
    .and_then(|()| de.end());
    if let Some(e) = stop {
        return Err(e);
    }
    match result {
        Ok(()) => Ok(count),
        Err(e) if e.is_io() => Err(ImportError::io(file, std::io::Error::other(e.to_string()))),
        Err(e) => Err(ImportError::Input(format!(
            "{name}:{}:{}: not a JSON array or {{\"data\": [...]}} object: {} ({count} element(s) read before it)",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))),
    }
}

/// serde_json appends " at line L column C"; the message leads with them already.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// Read one element into `T`; on failure, the path of the offending field.
pub fn typed<T: DeserializeOwned>(path: &str, raw: &RawValue) -> Result<T, (String, String)> {
    match serde_json::from_str::<T>(raw.get()) {
        Ok(v) => Ok(v),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let inner = e.path().to_string();
                    let at = if inner == "." || inner.is_empty() {
                        path.to_string()
                    } else if inner.starts_with('[') {
                        format!("{path}{inner}")
                    } else {
                        format!("{path}.{inner}")
                    };
                    Err((at, strip_position(&e.into_inner().to_string()).to_string()))
                }
            }
        }
    }
}

type Each<'a> = dyn FnMut(String, &RawValue) -> Result<(), ImportError> + 'a;

struct Top<'a, 'b> {
    each: &'a mut Each<'b>,
    stop: &'a mut Option<ImportError>,
    count: &'a mut u64,
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array, or an object with a `data` array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        walk(seq, "$", self.each, self.stop, self.count)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "data" && !seen {
                seen = true;
                map.next_value_seed(Data {
                    each: &mut *self.each,
                    stop: &mut *self.stop,
                    count: &mut *self.count,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !seen {
            return Err(de::Error::custom("the object has no `data` array"));
        }
        Ok(())
    }
}

struct Data<'a, 'b> {
    each: &'a mut Each<'b>,
    stop: &'a mut Option<ImportError>,
    count: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for Data<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Data<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array under `data`")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        walk(seq, "$.data", self.each, self.stop, self.count)
    }
}

fn walk<'de, A: SeqAccess<'de>>(
    mut seq: A,
    prefix: &str,
    each: &mut Each<'_>,
    stop: &mut Option<ImportError>,
    count: &mut u64,
) -> Result<(), A::Error> {
    while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
        if let Err(e) = each(format!("{prefix}[{count}]"), &raw) {
            *stop = Some(e);
            return Err(de::Error::custom("stopped"));
        }
        *count += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn collect(text: &str) -> Result<Vec<(String, String)>, ImportError> {
        let f = file(text);
        let mut out = Vec::new();
        for_each_element(f.path(), "x.json", |path, raw| {
            out.push((path, raw.get().to_string()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn bare_arrays_and_data_objects_both_stream() {
        let a = collect(r#"[{"id":"a"}, {"id":"b"}]"#).unwrap();
        assert_eq!(a[1], ("$[1]".to_string(), r#"{"id":"b"}"#.to_string()));
        let d = collect(r#"{"total_count": 2, "data": [{"id":"a"},{"id":"b"}], "x": 1}"#).unwrap();
        assert_eq!(d[0].0, "$.data[0]");
        assert_eq!(d.len(), 2);
        assert!(collect("[]").unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = collect("[{\"id\":\"a\"},\n {\"id\": }]")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.json:2:"), "{err}");
        assert!(err.contains("1 element(s) read"), "{err}");
        let err = collect(r#"{"total_count": 0}"#).unwrap_err().to_string();
        assert!(err.contains("no `data` array"), "{err}");
        assert!(collect(r#""text""#).is_err());
    }

    #[test]
    fn typed_errors_name_the_json_path() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            n: i64,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Inner>,
        }
        let raw = RawValue::from_string(r#"{"items":[{"n":1},{"n":"two"}]}"#.into()).unwrap();
        let (path, message) = typed::<Outer>("$[7]", &raw).unwrap_err();
        assert_eq!(path, "$[7].items[1].n");
        assert!(message.contains("invalid type"), "{message}");
    }
}
