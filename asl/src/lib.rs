//! placeholder while building
#![allow(missing_docs)]
pub mod diagnostic;
pub mod intrinsics;
pub mod parse;
pub mod path;
pub mod template;
pub mod timestamp;
pub mod states {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum QueryLanguage {
        JsonPath,
        Jsonata,
    }
    impl QueryLanguage {
        pub fn as_str(self) -> &'static str {
            match self {
                Self::JsonPath => "JSONPath",
                Self::Jsonata => "JSONata",
            }
        }
    }
}
