//! `text_enum!`: an enum stored and shown as fixed lowercase names (delivery
//! and issue states, subscriber statuses, unsubscribe sources). One
//! declaration gives the variants, `ALL` in declaration order, `as_str`,
//! `Display` and a `FromStr` whose error names what was expected.

/// `text_enum! { #[derive(..)] pub enum Name("what it is") { Variant = "text", .. } }`
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The stored (and shown) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " `{}`"), s))
            }
        }
    };
}

pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use crate::domain::{DeliveryState, IssueState, SubscriberStatus, UnsubscribeSource};

    /// The name parses back, and serde writes the same name (JSON output
    /// and the database agree).
    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
        T: serde::Serialize,
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        for v in all {
            let name = v.to_string();
            assert_eq!(name.parse::<T>().unwrap(), *v);
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(name));
        }
    }

    #[test]
    fn every_name_round_trips_and_matches_serde() {
        round_trips(&DeliveryState::ALL);
        round_trips(&IssueState::ALL);
        round_trips(&SubscriberStatus::ALL);
        round_trips(&UnsubscribeSource::ALL);
    }

    #[test]
    fn an_unknown_name_says_what_was_expected() {
        assert_eq!(
            "sending".parse::<DeliveryState>().unwrap_err(),
            "unknown delivery state `sending`"
        );
        assert_eq!(
            "x".parse::<UnsubscribeSource>().unwrap_err(),
            "unknown unsubscribe source `x`"
        );
    }
}
