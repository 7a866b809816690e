//! A work queue on SQS.

use aws_sdk_sqs::Client;

use super::{Queue, StoreError};

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }
}

impl Queue for SqsQueue {
    async fn send(&self, body: &str) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(StoreError::backend("SQS SendMessage"))?;
        Ok(())
    }

    async fn retry_after(&self, receipt: &str, secs: u32) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs.min(43_200) as i32)
            .send()
            .await
            .map_err(StoreError::backend("SQS ChangeMessageVisibility"))?;
        Ok(())
    }

    async fn send_delayed(&self, body: &str, delay_secs: u32) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_secs.min(900) as i32)
            .send()
            .await
            .map_err(StoreError::backend("SQS SendMessage"))?;
        Ok(())
    }
}
