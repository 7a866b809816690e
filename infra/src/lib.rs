//! Local provisioning of `template.yaml`'s resources: the DynamoDB tables, S3 buckets (with
//! their queue notifications) and SQS queues (with their dead-letter redrive) are created
//! on any endpoint, moto's locally, from the template's own definitions, so local and
//! deployed resources cannot drift apart. Functions, APIs, policies and secrets are left
//! to SAM; the functions' environment is resolved against what was created.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml_ng::Value;

pub mod events;
pub mod gateway;
pub mod jwt;
pub mod runtime;
mod template;

pub use template::{get_att_parts, intrinsic, scalar, Template, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{operation} for {resource} failed: {detail}")]
    Aws { operation: &'static str, resource: String, detail: String },
    #[error("{resource}: {what}")]
    Unsupported { resource: String, what: String },
}

pub(crate) fn aws_error<E: std::error::Error>(operation: &'static str, resource: &str) -> impl FnOnce(E) -> InfraError {
    let resource = resource.to_owned();
    move |e| InfraError::Aws { operation, resource, detail: aws_sdk_s3::error::DisplayErrorContext(&e).to_string() }
}

/// The AWS clients provisioning uses.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: docusnap_core::aws::dynamodb(sdk),
            s3: docusnap_core::aws::s3(sdk, true),
            sqs: docusnap_core::aws::sqs(sdk),
        }
    }
}

/// What a provisioned resource answers to `!Ref` and `!GetAtt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    pub kind: ResourceKind,
    /// Table name, bucket name or queue name.
    pub name: String,
    pub arn: String,
    /// Queue URL, for queues.
    pub url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Table,
    Bucket,
    Queue,
}

/// The resources of one template, created under one name prefix.
#[derive(Clone, Debug)]
pub struct LocalStack {
    pub prefix: String,
    pub resources: BTreeMap<String, Provisioned>,
}

impl LocalStack {
    fn get(&self, logical_id: &str, kind: ResourceKind) -> Option<&Provisioned> {
        self.resources.get(logical_id).filter(|r| r.kind == kind)
    }

    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id, ResourceKind::Table).map(|r| r.name.as_str())
    }

    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id, ResourceKind::Bucket).map(|r| r.name.as_str())
    }

    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id, ResourceKind::Queue).and_then(|r| r.url.as_deref())
    }

    /// The value of `!Ref` to a provisioned resource, as CloudFormation gives it.
    fn reference(&self, logical_id: &str) -> Option<String> {
        let r = self.resources.get(logical_id)?;
        Some(match r.kind {
            ResourceKind::Queue => r.url.clone()?,
            ResourceKind::Table | ResourceKind::Bucket => r.name.clone(),
        })
    }

    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String> {
        let r = self.resources.get(logical_id)?;
        match attribute {
            "Arn" => Some(r.arn.clone()),
            "QueueName" | "TableName" | "BucketName" => Some(r.name.clone()),
            "QueueUrl" => r.url.clone(),
            _ => None,
        }
    }

    /// A function's environment as the template declares it (globals, then the function's
    /// own), resolved against the local resources. Variables that refer to what is not
    /// provisioned locally (a secret, say) are left out: the caller sets their local
    /// stand-ins.
    pub fn function_env(&self, template: &Template, function: &str) -> Result<BTreeMap<String, String>, InfraError> {
        let mut env = BTreeMap::new();
        for (name, value) in template.function_env(function)? {
            if let Some(value) = self.resolve(template, &value) {
                env.insert(name, value);
            }
        }
        Ok(env)
    }

    fn resolve(&self, template: &Template, value: &Value) -> Option<String> {
        if let Some(s) = template::scalar(value) {
            return Some(s);
        }
        let (function, argument) = template::intrinsic(value)?;
        match function.as_str() {
            "Ref" => {
                let target = argument.as_str()?;
                self.reference(target).or_else(|| template.parameter_default(target))
            }
            "GetAtt" => {
                let (resource, attribute) = template::get_att_parts(&argument)?;
                self.attribute(&resource, &attribute)
            }
            _ => None,
        }
    }
}

/// Loads and parses a template file.
pub fn load_template(path: &Path) -> Result<Template, InfraError> {
    Ok(Template::from_file(path)?)
}

/// Creates every table, queue and bucket of `template`, named `<prefix>-<logical id>`.
pub async fn provision(template: &Template, clients: &Clients, prefix: &str) -> Result<LocalStack, InfraError> {
    let mut stack = LocalStack { prefix: prefix.to_owned(), resources: BTreeMap::new() };
    // Queues first (buckets notify them); redrive policies once every queue has an ARN.
    for (id, properties) in &template.resources_of_type("AWS::SQS::Queue") {
        let name = local_name(prefix, id);
        let mut request = clients.sqs.create_queue().queue_name(&name);
        for (attribute, key) in [
            (QueueAttributeName::VisibilityTimeout, "VisibilityTimeout"),
            (QueueAttributeName::MessageRetentionPeriod, "MessageRetentionPeriod"),
            (QueueAttributeName::ReceiveMessageWaitTimeSeconds, "ReceiveMessageWaitTimeSeconds"),
        ] {
            if let Some(value) = properties.get(key).and_then(template::scalar) {
                request = request.attributes(attribute, value);
            }
        }
        let url =
            request.send().await.map_err(aws_error("SQS CreateQueue", id))?.queue_url.ok_or_else(|| {
                InfraError::Unsupported { resource: id.clone(), what: "no queue URL returned".into() }
            })?;
        let arn = queue_arn(&clients.sqs, &url, id).await?;
        stack.resources.insert(id.clone(), Provisioned { kind: ResourceKind::Queue, name, arn, url: Some(url) });
    }
    for (id, properties) in &template.resources_of_type("AWS::SQS::Queue") {
        let Some(redrive) = properties.get("RedrivePolicy") else {
            continue;
        };
        let target = redrive.get("deadLetterTargetArn").and_then(|v| stack.resolve(template, v)).ok_or_else(|| {
            InfraError::Unsupported { resource: id.clone(), what: "unresolvable deadLetterTargetArn".into() }
        })?;
        let max_receives = redrive.get("maxReceiveCount").and_then(template::scalar).unwrap_or_else(|| "3".into());
        let policy = serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": max_receives}).to_string();
        let url = stack.queue_url(id).unwrap_or_default().to_owned();
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(url)
            .attributes(QueueAttributeName::RedrivePolicy, policy)
            .send()
            .await
            .map_err(aws_error("SQS SetQueueAttributes", id))?;
    }
    for (id, properties) in &template.resources_of_type("AWS::DynamoDB::Table") {
        let provisioned = create_table(clients, id, properties, &local_name(prefix, id)).await?;
        stack.resources.insert(id.clone(), provisioned);
    }
    for (id, properties) in &template.resources_of_type("AWS::S3::Bucket") {
        let name = local_name(prefix, id);
        clients.s3.create_bucket().bucket(&name).send().await.map_err(aws_error("S3 CreateBucket", id))?;
        stack.resources.insert(
            id.clone(),
            Provisioned {
                kind: ResourceKind::Bucket,
                arn: format!("arn:aws:s3:::{name}"),
                name: name.clone(),
                url: None,
            },
        );
        let queues = properties
            .get("NotificationConfiguration")
            .and_then(|n| n.get("QueueConfigurations"))
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        let mut configurations = Vec::new();
        for queue in &queues {
            configurations.push(queue_notification(&stack, template, id, queue)?);
        }
        if !configurations.is_empty() {
            clients
                .s3
                .put_bucket_notification_configuration()
                .bucket(&name)
                .notification_configuration(
                    NotificationConfiguration::builder().set_queue_configurations(Some(configurations)).build(),
                )
                .send()
                .await
                .map_err(aws_error("S3 PutBucketNotificationConfiguration", id))?;
        }
    }
    Ok(stack)
}

/// S3 bucket names allow lower-case letters, digits and hyphens only.
/// A queue's ARN, which SQS gives only as an attribute.
pub(crate) async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str, id: &str) -> Result<String, InfraError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws_error("SQS GetQueueAttributes", id))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| InfraError::Unsupported { resource: id.to_owned(), what: "no queue ARN returned".into() })
}

pub(crate) fn local_name(prefix: &str, logical_id: &str) -> String {
    let mut name = String::new();
    for (i, c) in logical_id.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    format!("{prefix}-{name}")
}

async fn create_table(clients: &Clients, id: &str, properties: &Value, name: &str) -> Result<Provisioned, InfraError> {
    let unsupported = |what: &str| InfraError::Unsupported { resource: id.to_owned(), what: what.to_owned() };
    let mut request = clients.dynamodb.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    for definition in properties.get("AttributeDefinitions").and_then(Value::as_sequence).into_iter().flatten() {
        let attribute =
            definition.get("AttributeName").and_then(template::scalar).ok_or_else(|| unsupported("AttributeName"))?;
        let kind =
            definition.get("AttributeType").and_then(template::scalar).ok_or_else(|| unsupported("AttributeType"))?;
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(aws_error("DynamoDB CreateTable", id))?,
        );
    }
    for key in properties.get("KeySchema").and_then(Value::as_sequence).into_iter().flatten() {
        let attribute = key.get("AttributeName").and_then(template::scalar).ok_or_else(|| unsupported("KeySchema"))?;
        let kind = key.get("KeyType").and_then(template::scalar).ok_or_else(|| unsupported("KeyType"))?;
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(attribute)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .map_err(aws_error("DynamoDB CreateTable", id))?,
        );
    }
    let arn = request
        .send()
        .await
        .map_err(aws_error("DynamoDB CreateTable", id))?
        .table_description
        .and_then(|d| d.table_arn)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:local:000000000000:table/{name}"));
    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        let attribute =
            ttl.get("AttributeName").and_then(template::scalar).ok_or_else(|| unsupported("TTL AttributeName"))?;
        let enabled = ttl.get("Enabled").and_then(template::scalar).is_some_and(|v| v == "true");
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(enabled)
                    .build()
                    .map_err(aws_error("DynamoDB UpdateTimeToLive", id))?,
            )
            .send()
            .await
            .map_err(aws_error("DynamoDB UpdateTimeToLive", id))?;
    }
    Ok(Provisioned { kind: ResourceKind::Table, name: name.to_owned(), arn, url: None })
}

fn queue_notification(
    stack: &LocalStack, template: &Template, bucket: &str, queue: &Value,
) -> Result<QueueConfiguration, InfraError> {
    let unsupported = |what: &str| InfraError::Unsupported { resource: bucket.to_owned(), what: what.to_owned() };
    let arn =
        queue.get("Queue").and_then(|q| stack.resolve(template, q)).ok_or_else(|| unsupported("notification queue"))?;
    let event = queue.get("Event").and_then(template::scalar).ok_or_else(|| unsupported("notification event"))?;
    let mut rules = Vec::new();
    let filter_rules =
        queue.get("Filter").and_then(|f| f.get("S3Key")).and_then(|k| k.get("Rules")).and_then(Value::as_sequence);
    for rule in filter_rules.into_iter().flatten() {
        let name = rule.get("Name").and_then(template::scalar).ok_or_else(|| unsupported("filter rule name"))?;
        let value = rule.get("Value").and_then(template::scalar).ok_or_else(|| unsupported("filter rule value"))?;
        rules.push(FilterRule::builder().name(FilterRuleName::from(name.as_str())).value(value).build());
    }
    let mut configuration = QueueConfiguration::builder().queue_arn(arn).events(Event::from(event.as_str()));
    if !rules.is_empty() {
        configuration = configuration.filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        );
    }
    configuration.build().map_err(aws_error("S3 notification", bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_are_valid_bucket_names() {
        assert_eq!(local_name("ds-1", "UploadsBucket"), "ds-1-uploads-bucket");
        assert_eq!(local_name("ds", "OcrDeadLetterQueue"), "ds-ocr-dead-letter-queue");
    }
}
