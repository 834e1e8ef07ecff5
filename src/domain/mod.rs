//! Newtypes that parse: once a value has one of these types it is known good,
//! so code downstream never re-checks strings.

mod attribute_key;
mod audience;
mod ledger;
mod subscriber_email;
mod subscriber_name;
mod subscriber_status;
mod text_enum;
mod unsubscribe_source;

pub use attribute_key::{is_attr_key, MAX_ATTR_KEY};
pub use audience::{Audience, Filter};
pub use ledger::{DeliveryState, IssueState, LedgerCounts};
pub use subscriber_email::SubscriberEmail;
pub use subscriber_name::SubscriberName;
pub use subscriber_status::SubscriberStatus;
pub use unsubscribe_source::UnsubscribeSource;
