//! Ledger and issue states through sqlx: stored as their text names (the
//! tables' CHECK constraints accept exactly these), read back by parsing,
//! so an unknown name is a decode error rather than a silent default. The
//! same on both backends.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::domain::{DeliveryState, IssueState};

macro_rules! text_state {
    ($ty:ty, $db:ty) => {
        impl Type<$db> for $ty {
            fn type_info() -> <$db as Database>::TypeInfo {
                <&str as Type<$db>>::type_info()
            }

            fn compatible(ty: &<$db as Database>::TypeInfo) -> bool {
                <&str as Type<$db>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, $db> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, $db>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, $db> for $ty {
            fn decode(value: <$db as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, $db>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_state!(DeliveryState, sqlx::Sqlite);
text_state!(IssueState, sqlx::Sqlite);
text_state!(DeliveryState, sqlx::Postgres);
text_state!(IssueState, sqlx::Postgres);
