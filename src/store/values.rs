//! Domain values as the database stores them: read back through their
//! parsers, so a row decodes into the same newtype that was written.

use sqlx::error::BoxDynError;
use sqlx::Database;

use crate::domain::SubscriberEmail;

macro_rules! email_type {
    ($db:ty) => {
        impl sqlx::Type<$db> for SubscriberEmail {
            fn type_info() -> <$db as Database>::TypeInfo {
                <str as sqlx::Type<$db>>::type_info()
            }

            fn compatible(ty: &<$db as Database>::TypeInfo) -> bool {
                <str as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for SubscriberEmail {
            fn decode(value: <$db as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as sqlx::Decode<$db>>::decode(value)?;
                Ok(SubscriberEmail::parse(text)?)
            }
        }
    };
}

email_type!(sqlx::Sqlite);
email_type!(sqlx::Postgres);
