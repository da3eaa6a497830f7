//! The query languages a state's fields are written in.

/// The query language of a state: how its fields are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryLanguage {
    /// `"QueryLanguage": "JSONPath"`, the default: paths, templates, intrinsic functions.
    #[default]
    JsonPath,
    /// `"QueryLanguage": "JSONata"`: `{% expression %}` values.
    Jsonata,
}

impl QueryLanguage {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryLanguage::JsonPath => "JSONPath",
            QueryLanguage::Jsonata => "JSONata",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<QueryLanguage> {
        match s {
            "JSONPath" => Some(QueryLanguage::JsonPath),
            "JSONata" => Some(QueryLanguage::Jsonata),
            _ => None,
        }
    }
}
