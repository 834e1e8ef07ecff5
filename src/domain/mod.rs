//! Newtypes that parse: once a value has one of these types it is known good,
//! so code downstream never re-checks strings.

mod subscriber_email;
mod subscriber_name;
mod subscriber_status;

pub use subscriber_email::SubscriberEmail;
pub use subscriber_name::SubscriberName;
pub use subscriber_status::SubscriberStatus;
