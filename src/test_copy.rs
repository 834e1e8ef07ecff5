//! Links in test copies (`herald send --test`). A test copy's links are
//! signed for subscriber 0, which no subscriber has (SQLite row ids start
//! at 1): its unsubscribe link opens a page saying it is a test copy and
//! changes nothing, and its "view in browser" link carries a signed preview
//! token that opens the web version of that issue version before its live
//! send has started.

use crate::token::{SigningKeys, TokenClaims};

/// The subscriber id every link of a test copy names.
pub const TEST_COPY_SUBSCRIBER: i64 = 0;

/// The query parameter of a preview link.
pub const PREVIEW_PARAM: &str = "preview";

/// Do these claims come from a test copy?
pub fn is_test_copy(claims: &TokenClaims) -> bool {
    claims.subscriber_id == TEST_COPY_SUBSCRIBER
}

/// The "view in browser" URL of a test copy of issue version `issue_id`.
pub fn preview_url(view_url: &str, keys: &SigningKeys, issue_id: i64) -> String {
    let token = keys.sign(TokenClaims {
        subscriber_id: TEST_COPY_SUBSCRIBER,
        issue_id: Some(issue_id),
    });
    format!("{view_url}?{PREVIEW_PARAM}={token}")
}

/// The issue version a genuine preview token opens.
pub fn preview_issue(keys: &SigningKeys, token: &str) -> Option<i64> {
    keys.verify(token)
        .filter(is_test_copy)
        .and_then(|claims| claims.issue_id)
}
