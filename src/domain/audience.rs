//! `Audience`: which subscribers a live send goes to. Filters on subscriber
//! attributes, all of which must hold: a value equal to one of a list,
//! present, or absent (missing, null or blank, as placeholders see it).
//! Written as `[audience]` in an issue file (`city = ["Kyiv", "Lviv"]`,
//! `club_role = true`) or as `--audience KEY=VALUE` (`KEY=*` present,
//! `KEY=` absent; a key given twice means one of). Stored with the issue as
//! JSON; the SQL lives in `store::attributes`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One attribute's condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// The attribute's text equals one of these (one value: equality).
    OneOf(Vec<String>),
    Present,
    Absent,
}

/// A non-empty set of filters, by attribute key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience(BTreeMap<String, Filter>);

fn check_key(key: &str) -> Result<(), String> {
    if super::is_attr_key(key) {
        Ok(())
    } else {
        Err(format!(
            "`{key}`: an attribute key is 1 to {} of A-Z a-z 0-9 _ -",
            super::MAX_ATTR_KEY
        ))
    }
}

fn check_value(key: &str, v: &str) -> Result<String, String> {
    if v.is_empty() || v.chars().any(char::is_control) || v.len() > 500 {
        Err(format!(
            "`{key}`: values are 1 to 500 bytes of text without control characters"
        ))
    } else {
        Ok(v.to_string())
    }
}

impl Audience {
    pub fn filters(&self) -> &BTreeMap<String, Filter> {
        &self.0
    }

    /// From an issue file's `[audience]` table. Errors name the key.
    pub fn from_toml(table: &toml::Table) -> Result<Audience, String> {
        if table.is_empty() {
            return Err("is empty (leave it out to send to every active subscriber)".into());
        }
        let mut out = BTreeMap::new();
        for (key, value) in table {
            check_key(key)?;
            let filter = match value {
                toml::Value::String(s) => Filter::OneOf(vec![check_value(key, s)?]),
                toml::Value::Array(list) if !list.is_empty() => Filter::OneOf(
                    list.iter()
                        .map(|v| match v {
                            toml::Value::String(s) => check_value(key, s),
                            _ => Err(format!("`{key}`: a list holds strings only")),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                toml::Value::Boolean(true) => Filter::Present,
                toml::Value::Boolean(false) => Filter::Absent,
                _ => {
                    return Err(format!(
                    "`{key}`: write a string, a list of strings, true (present) or false (absent)"
                ))
                }
            };
            out.insert(key.clone(), filter);
        }
        Ok(Audience(out))
    }

    /// From `--audience` arguments: `KEY=VALUE`, `KEY=*` (present), `KEY=`
    /// (absent); a key given again adds a value it may have.
    pub fn from_args(args: &[String]) -> Result<Option<Audience>, String> {
        let mut out: BTreeMap<String, Filter> = BTreeMap::new();
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("--audience {arg}: write KEY=VALUE, KEY=* or KEY="))?;
            let key = key.trim();
            check_key(key).map_err(|e| format!("--audience {arg}: {e}"))?;
            let filter = match value {
                "*" => Filter::Present,
                "" => Filter::Absent,
                v => Filter::OneOf(vec![
                    check_value(key, v).map_err(|e| format!("--audience {arg}: {e}"))?
                ]),
            };
            match (out.get_mut(key), filter) {
                (None, f) => {
                    out.insert(key.to_string(), f);
                }
                (Some(Filter::OneOf(have)), Filter::OneOf(more)) => have.extend(more),
                (Some(_), _) => {
                    return Err(format!(
                        "--audience {arg}: `{key}` is already filtered in a way this cannot be combined with"
                    ))
                }
            }
        }
        Ok((!out.is_empty()).then_some(Audience(out)))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an audience serialises")
    }

    pub fn from_json(s: &str) -> Result<Audience, serde_json::Error> {
        serde_json::from_str(s)
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, filter)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            match filter {
                Filter::OneOf(v) if v.len() == 1 => write!(f, "{key} = {:?}", v[0])?,
                Filter::OneOf(v) => write!(f, "{key} in {v:?}")?,
                Filter::Present => write!(f, "{key} present")?,
                Filter::Absent => write!(f, "{key} absent")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_forms_parse_and_print() {
        let t: toml::Table = toml::from_str(
            "city = [\"Kyiv\", \"Lviv\"]\nrole = true\nbanned = false\nlang = \"uk\"",
        )
        .unwrap();
        let a = Audience::from_toml(&t).unwrap();
        assert_eq!(
            a.to_string(),
            "banned absent and city in [\"Kyiv\", \"Lviv\"] and lang = \"uk\" and role present"
        );
        assert_eq!(Audience::from_json(&a.to_json()).unwrap(), a);
        let bad: toml::Table = toml::from_str("city = 3").unwrap();
        assert!(Audience::from_toml(&bad).unwrap_err().contains("`city`"));
        let bad: toml::Table = toml::from_str("\"a b\" = \"x\"").unwrap();
        assert!(Audience::from_toml(&bad).is_err());
    }

    #[test]
    fn arguments_combine_values_of_one_key() {
        let args = ["city=Kyiv", "city=Lviv", "role=*", "banned="].map(String::from);
        let a = Audience::from_args(&args).unwrap().unwrap();
        assert_eq!(
            a.filters()["city"],
            Filter::OneOf(vec!["Kyiv".into(), "Lviv".into()])
        );
        assert_eq!(a.filters()["role"], Filter::Present);
        assert_eq!(a.filters()["banned"], Filter::Absent);
        assert!(Audience::from_args(&["city".into()]).is_err());
        assert!(Audience::from_args(&["role=*".into(), "role=x".into()]).is_err());
        assert_eq!(Audience::from_args(&[]).unwrap(), None);
    }
}
