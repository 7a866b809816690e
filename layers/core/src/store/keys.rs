//! Key bindings on DynamoDB: each RSA-wrapped AES key, by its digest, bound to the first
//! content it arrived with. v1's AES-CBC has no integrity, so without this anyone holding
//! a victim's `aes_key` and `content` could post variations of the content under that key
//! and tell bad padding (`AES_DECRYPTION_FAILED`) from good (`INVALID_JSON`, ...): a
//! padding oracle. Honest clients make a fresh key per request, so a key that comes back
//! with other content is refused before anything is decrypted.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{Binding, KeyBindings, StoreError};
use crate::clock::Timestamp;

/// Attribute names, shared with `template.yaml` (key schema and TTL).
pub mod attr {
    pub const KEY: &str = "key_digest";
    pub const CONTENT: &str = "content_sha256";
    pub const EXPIRES_AT: &str = "expires_at";
}

#[derive(Clone, Debug)]
pub struct DynamoKeyBindings {
    client: Client,
    table: String,
}

impl DynamoKeyBindings {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl KeyBindings for DynamoKeyBindings {
    async fn bind(
        &self, key: &str, content: &str, now: Timestamp, expires_at: Timestamp,
    ) -> Result<Binding, StoreError> {
        let item = HashMap::from([
            (attr::KEY.to_owned(), AttributeValue::S(key.to_owned())),
            (attr::CONTENT.to_owned(), AttributeValue::S(content.to_owned())),
            (attr::EXPIRES_AT.to_owned(), AttributeValue::N(expires_at.to_string())),
        ]);
        // A binding past its expiry that TTL has not yet removed binds no more.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key) OR #exp <= :now OR #content = :content")
            .expression_attribute_names("#key", attr::KEY)
            .expression_attribute_names("#exp", attr::EXPIRES_AT)
            .expression_attribute_names("#content", attr::CONTENT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":content", AttributeValue::S(content.to_owned()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Binding::Allowed),
            Err(e) if matches!(e.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => {
                Ok(Binding::OtherContent)
            }
            Err(e) => Err(StoreError::backend("DynamoDB PutItem (key binding)")(e)),
        }
    }
}
