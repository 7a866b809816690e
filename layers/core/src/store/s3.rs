//! The uploads bucket on S3.

use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;

use super::{BlobStore, PresignedPut, StoreError, StoredObject, UploadUrls};

/// DeleteObjects takes at most 1000 keys.
const DELETE_OBJECTS_MAX: usize = 1000;

#[derive(Clone, Debug)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

impl UploadUrls for S3BlobStore {
    async fn presign_put(
        &self, key: &str, size: u64, sha256_base64: &str, expires_secs: u64,
    ) -> Result<PresignedPut, StoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(expires_secs))
            .map_err(StoreError::backend("S3 presigning config"))?;
        // Content-Length and x-amz-checksum-sha256 are signed: S3 refuses any other body.
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(size as i64)
            .checksum_sha256(sha256_base64)
            .presigned(config)
            .await
            .map_err(StoreError::backend("S3 PutObject presigning"))?;
        Ok(PresignedPut {
            url: request.uri().to_owned(),
            method: request.method().to_owned(),
            headers: request.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        })
    }
}

impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(StoreError::backend("S3 PutObject"))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => return Ok(None),
            Err(e) => return Err(StoreError::backend("S3 GetObject")(e)),
        };
        let bytes = output.body.collect().await.map_err(StoreError::backend("S3 GetObject body"))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
        let mut objects = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::backend("S3 ListObjectsV2"))?;
            objects.extend(page.contents().iter().filter_map(|o| {
                Some(StoredObject {
                    key: o.key()?.to_owned(),
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                    last_modified: o.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            }));
        }
        Ok(objects)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        for chunk in keys.chunks(DELETE_OBJECTS_MAX) {
            let objects = chunk
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::backend("S3 DeleteObjects"))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(StoreError::backend("S3 DeleteObjects"))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(StoreError::backend("S3 DeleteObjects"))?;
            if let Some(failed) = output.errors().first() {
                return Err(StoreError::Partial(format!(
                    "S3 DeleteObjects left {} objects, first {:?}: {:?}",
                    output.errors().len(),
                    failed.key(),
                    failed.message()
                )));
            }
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let keys: Vec<String> = self.list(prefix).await?.into_iter().map(|o| o.key).collect();
        self.delete(&keys).await?;
        Ok(keys.len())
    }
}
