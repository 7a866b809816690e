//! template.yaml's wiring, read from the file: every queue has a dead-letter queue and
//! outlasts its function, the bucket notifies the OCR queue, each function may do only
//! what its code does, and every function deploys behind an alarm that can roll it back.

use std::collections::{BTreeMap, BTreeSet};

use docusnap_infra::events::mappings;
use docusnap_infra::{get_att_parts, intrinsic, scalar, Template};
use docusnap_tests::repo_root;
use serde_yaml_ng::Value;

fn template() -> Template {
    Template::from_file(&repo_root().join("template.yaml")).expect("template.yaml")
}

/// `!GetAtt X.Arn` or `!Ref X` -> X.
fn target(value: &Value) -> Option<String> {
    let (function, argument) = intrinsic(value)?;
    match function.as_str() {
        "GetAtt" => get_att_parts(&argument).map(|(resource, _)| resource),
        "Ref" => scalar(&argument),
        _ => None,
    }
}

fn number(value: Option<&Value>) -> u64 {
    value.and_then(scalar).and_then(|v| v.parse().ok()).expect("a number")
}

#[test]
fn every_work_queue_has_a_dead_letter_queue_and_outlasts_its_function() {
    let template = template();
    let queues: BTreeMap<String, Value> = template.resources_of_type("AWS::SQS::Queue").into_iter().collect();
    let dead: BTreeSet<String> = queues
        .values()
        .filter_map(|q| q.get("RedrivePolicy").and_then(|r| r.get("deadLetterTargetArn")).and_then(target))
        .collect();
    for (id, queue) in &queues {
        if dead.contains(id) {
            // Consumed until its message is handled (retention: 14 days).
            assert!(queue.get("RedrivePolicy").is_none(), "{id} is a dead-letter queue; it has none itself");
            continue;
        }
        let redrive = queue.get("RedrivePolicy").unwrap_or_else(|| panic!("{id} has no dead-letter queue"));
        let receives = number(redrive.get("maxReceiveCount"));
        // A task's work is retried a few times; a callback, backing off, for 45 minutes
        // (docusnap_callback_fn::backoff_secs).
        let most = if id == "CallbackQueue" { 8 } else { 5 };
        assert!((2..=most).contains(&receives), "{id}: {receives} receives before the dead-letter queue");
    }
    assert_eq!(
        dead,
        BTreeSet::from([
            "OcrDeadLetterQueue".into(),
            "ExtractDeadLetterQueue".into(),
            "CallbackDeadLetterQueue".into()
        ])
    );
    let hour: u32 = (1..8).map(docusnap_callback_fn::backoff_secs).sum();
    assert!((2400..=5400).contains(&hour), "callbacks are retried for most of an hour: {hour} s");
    for mapping in mappings(&template, &repo_root()).unwrap() {
        let visibility = number(queues[&mapping.queue].get("VisibilityTimeout"));
        assert!(
            visibility > mapping.timeout.as_secs(),
            "{}: visibility {visibility} s vs timeout {:?}",
            mapping.queue,
            mapping.timeout
        );
        assert!(mapping.report_batch_item_failures, "{} reports partial batch failures", mapping.function);
    }
    // function timeout < claim lifetime < visibility timeout: a message that comes back
    // after its holder died finds the claim lapsed, and no live holder loses its claim.
    let extract = template.resource("ExtractFunction").unwrap();
    let timeout = number(extract["Properties"].get("Timeout"));
    let claim = docusnap_core::task::extract_claim_secs(timeout) as u64;
    let visibility = number(queues["ExtractQueue"].get("VisibilityTimeout"));
    assert!(timeout < claim && claim < visibility, "timeout {timeout} s, claim {claim} s, visibility {visibility} s");
    // The OCR function knows its queue's receive limit, to end a task on the last receive.
    let ocr = template.resource("OcrFunction").unwrap();
    let told = &ocr["Properties"]["Environment"]["Variables"][docusnap_core::config::var::OCR_MAX_RECEIVES];
    assert_eq!(number(Some(told)), number(queues["OcrQueue"]["RedrivePolicy"].get("maxReceiveCount")));
    assert_eq!(number(Some(told)), u64::from(docusnap_core::config::DEFAULT_MAX_RECEIVES));
    // The function knows its own timeout, for invocations whose deadline is unusable.
    let told = &extract["Properties"]["Environment"]["Variables"][docusnap_core::config::var::FUNCTION_TIMEOUT_SECS];
    assert_eq!(number(Some(told)), timeout);
    // Every dead-letter queue is consumed by the function whose queue feeds it (which ends
    // each dead letter's task with a code: none stays processing for good), and watched
    // through that function's DeadLetters metric, since a consumed queue shows no backlog.
    let all = mappings(&template, &repo_root()).unwrap();
    let alarmed: BTreeSet<String> = template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .iter()
        .filter(|(_, alarm)| alarm["MetricName"].as_str() == Some(docusnap_core::metrics::name::DEAD_LETTERS))
        .filter_map(|(_, alarm)| alarm["Dimensions"].as_sequence()?.first()?.get("Value").and_then(target))
        .collect();
    for queue in &dead {
        let feeds = queues.iter().find(|(_, q)| {
            q.get("RedrivePolicy").and_then(|r| r.get("deadLetterTargetArn")).and_then(target).as_ref() == Some(queue)
        });
        let (work_queue, _) = feeds.unwrap();
        let owner = all.iter().find(|m| &m.queue == work_queue).map(|m| m.function.clone()).unwrap();
        assert!(all.iter().any(|m| &m.queue == queue && m.function == owner), "{owner} does not consume {queue}");
        assert!(alarmed.contains(&owner), "no DeadLetters alarm for {owner}: {alarmed:?}");
        let told = &template.resource(&owner).unwrap()["Properties"]["Environment"]["Variables"];
        let arn_var = match owner.as_str() {
            "OcrFunction" => docusnap_core::config::var::OCR_DEAD_LETTER_QUEUE_ARN,
            "CallbackFunction" => docusnap_core::config::var::CALLBACK_DEAD_LETTER_QUEUE_ARN,
            _ => docusnap_core::config::var::EXTRACT_DEAD_LETTER_QUEUE_ARN,
        };
        assert_eq!(told.get(arn_var).and_then(target).as_ref(), Some(queue), "{owner} is not told {queue}'s ARN");
    }
}

#[test]
fn the_bucket_notifies_the_ocr_queue_of_new_envelopes() {
    let template = template();
    let bucket = template.resource("UploadsBucket").unwrap();
    let configs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"].as_sequence().unwrap();
    let envelope = configs
        .iter()
        .find(|c| {
            let rules = c["Filter"]["S3Key"]["Rules"].as_sequence().unwrap();
            rules.iter().any(|r| r["Name"] == "prefix" && r["Value"] == "tasks/")
        })
        .expect("a notification for tasks/");
    let batch = configs
        .iter()
        .find(|c| {
            c["Filter"]["S3Key"]["Rules"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|r| r["Name"] == "prefix" && r["Value"] == "batch/")
        })
        .expect("a notification for batch/");
    assert_eq!(target(&batch["Queue"]).as_deref(), Some("OcrQueue"));
    assert_eq!(target(&envelope["Queue"]).as_deref(), Some("OcrQueue"));
    assert_eq!(envelope["Event"], "s3:ObjectCreated:*");
    // S3 may write to that queue, and only from this bucket.
    let policy = template.resource("OcrQueuePolicy").unwrap();
    let statement = &policy["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
    assert!(statement["Condition"]["ArnLike"].get("aws:SourceArn").is_some());
}

/// What each function's code calls, and so all its policy may allow.
fn used_by(function: &str) -> BTreeSet<(String, String)> {
    let table = "TasksTable";
    let objects = "UploadsBucket/tasks/*";
    let batch = "UploadsBucket/batch/*";
    let batch_results = "UploadsBucket/batch/*result.json";
    // A v2 task's end marker, whose notification starts its callback.
    let markers = "UploadsBucket/callbacks/*";
    let used: &[(&str, &str)] = match function {
        // create, touch, finish (timeouts), delete, delete_client; key bindings; envelopes
        // in, /clear out.
        "UploadFunction" => &[
            ("dynamodb:GetItem", table),
            ("dynamodb:PutItem", table),
            ("dynamodb:UpdateItem", table),
            ("dynamodb:DeleteItem", table),
            ("dynamodb:Query", table),
            ("dynamodb:BatchWriteItem", table),
            ("dynamodb:PutItem", "KeyBindingsTable"),
            ("dynamodb:GetItem", "QuotasTable"),
            ("dynamodb:UpdateItem", "QuotasTable"),
            ("s3:PutObject", objects),
            ("s3:DeleteObject", objects),
            ("s3:ListBucket", "UploadsBucket"),
            ("secretsmanager:GetSecretValue", "RsaKeySecret"),
            // v2: the deadline's and a fill task's messages; a timed-out task's end marker.
            ("sqs:SendMessage", "OcrQueue"),
            ("s3:PutObject", markers),
        ],
        // get, advance, finish, and create/delete for batch documents; the envelope in,
        // ocr.bin out, both deleted when a task ends here; batch pages listed and read,
        // envelopes and error files written; page groups of long tasks sent back to its own
        // queue (fan-out), their outputs written, read and deleted under the task's prefix.
        "OcrFunction" => &[
            ("dynamodb:GetItem", table),
            ("dynamodb:PutItem", table),
            ("dynamodb:UpdateItem", table),
            ("dynamodb:DeleteItem", table),
            ("s3:GetObject", objects),
            ("s3:PutObject", objects),
            ("s3:GetObject", batch),
            ("s3:PutObject", batch_results),
            ("s3:ListBucket", "UploadsBucket"),
            ("s3:DeleteObject", objects),
            ("sqs:SendMessage", "ExtractQueue"),
            ("sqs:SendMessage", "OcrQueue"),
            ("secretsmanager:GetSecretValue", "RsaKeySecret"),
            ("s3:PutObject", markers),
        ],
        // get, claim, advance, finish; the envelope and ocr.bin in, and deleted when the
        // task ends; batch results out.
        "ExtractFunction" => &[
            ("dynamodb:GetItem", table),
            ("dynamodb:UpdateItem", table),
            ("s3:GetObject", objects),
            ("s3:DeleteObject", objects),
            ("s3:PutObject", batch_results),
            ("s3:PutObject", markers),
            ("s3:ListBucket", "UploadsBucket"),
            ("secretsmanager:GetSecretValue", "RsaKeySecret"),
            ("secretsmanager:GetSecretValue", "LlmApiKeySecret"),
            // With LlmProvider bedrock only: the Converse call, on the configured model.
            ("bedrock:InvokeModel", "arn:AWS::Partition}:bedrock:AWS::Region}::foundation-model/BedrockModelId}"),
        ],
        // The task's callback from the table, its marker deleted once sent, each failed
        // callback's backoff; no secret (it opens nothing sealed).
        "CallbackFunction" => &[
            ("dynamodb:GetItem", table),
            ("s3:DeleteObject", markers),
            ("sqs:ChangeMessageVisibility", "CallbackQueue"),
        ],
        other => panic!("no expectations for {other}"),
    };
    used.iter().map(|(action, resource)| (action.to_string(), resource.to_string())).collect()
}

/// `!GetAtt X.Arn`, `!Ref X` or `!Sub "${X.Arn}/tasks/*"` as `X` or `X/tasks/*`.
fn resource_name(value: &Value) -> String {
    if let Some((function, argument)) = intrinsic(value) {
        if function == "Sub" {
            let text = scalar(&argument).unwrap_or_default();
            return text.replace("${", "").replace(".Arn}", "");
        }
    }
    target(value).unwrap_or_else(|| panic!("unexpected resource {value:?}"))
}

#[test]
fn each_function_may_do_only_what_its_code_does() {
    let template = template();
    let functions = template.resources_of_type("AWS::Serverless::Function");
    assert_eq!(functions.len(), 4);
    for (id, properties) in functions {
        let mut granted = BTreeSet::new();
        for policy in properties["Policies"].as_sequence().unwrap() {
            for statement in policy["Statement"].as_sequence().expect("inline statements only, no managed policies") {
                // `!If [Condition, statement, !Ref AWS::NoValue]`: granted when the
                // condition holds, so counted as granted.
                let statement = match intrinsic(statement) {
                    Some((function, argument)) if function == "If" => argument[1].clone(),
                    _ => statement.clone(),
                };
                assert_eq!(statement["Effect"], "Allow");
                let actions: Vec<String> = match &statement["Action"] {
                    Value::Sequence(list) => list.iter().filter_map(scalar).collect(),
                    one => vec![scalar(one).unwrap()],
                };
                let resources: Vec<String> = match &statement["Resource"] {
                    Value::Sequence(list) => list.iter().map(resource_name).collect(),
                    one => vec![resource_name(one)],
                };
                for action in &actions {
                    assert!(!action.contains('*'), "{id}: wildcard action {action}");
                    for resource in &resources {
                        granted.insert((action.clone(), resource.clone()));
                    }
                }
            }
        }
        assert_eq!(granted, used_by(&id), "{id}");
    }
}

#[test]
fn every_function_deploys_behind_an_alarm_that_rolls_it_back() {
    let template = template();
    let alarms: BTreeMap<String, Value> = template.resources_of_type("AWS::CloudWatch::Alarm").into_iter().collect();
    for (id, properties) in template.resources_of_type("AWS::Serverless::Function") {
        let preference = &properties["DeploymentPreference"];
        let alarm = preference["Alarms"]
            .as_sequence()
            .and_then(|a| a.first())
            .and_then(target)
            .unwrap_or_else(|| panic!("{id}: no alarm"));
        let watched = &alarms[&alarm];
        assert_eq!(watched["MetricName"], "Errors");
        assert_eq!(target(&watched["Dimensions"][0]["Value"]).as_deref(), Some(id.as_str()), "{alarm} watches {id}");
        assert_eq!(properties["PackageType"], "Image");
        assert!(template.resource(&id).unwrap()["Metadata"]["Dockerfile"].is_string());
    }
}

/// The audit's template items: TLS only, lists scoped to their prefixes, batch images never
/// overwritten, logs kept for a period, API access logged, OCR fan-out capped, the API's
/// concurrency reserved, and no CORS unless origins are given.
#[test]
fn the_template_guards_the_bucket_the_logs_and_the_fan_out() {
    let template = template();
    let policy = &template.resource("UploadsBucketPolicy").expect("a bucket policy")["Properties"];
    let statement = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(statement["Resource"].as_sequence().map(Vec::len), Some(2), "the bucket and its objects");

    let statements = |function: &str| -> Vec<Value> {
        let policies = template.resource(function).unwrap()["Properties"]["Policies"].as_sequence().unwrap().clone();
        policies.iter().flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default()).collect()
    };
    for (function, prefixes) in [
        ("UploadFunction", &["tasks/*"][..]),
        ("OcrFunction", &["batch/*", "tasks/*"]),
        ("ExtractFunction", &["tasks/*"]),
    ] {
        let list = statements(function).into_iter().find(|s| s["Action"] == "s3:ListBucket").unwrap();
        let listed: Vec<String> = match &list["Condition"]["StringLike"]["s3:prefix"] {
            Value::Sequence(all) => all.iter().filter_map(scalar).collect(),
            one => vec![scalar(one).unwrap_or_default()],
        };
        assert_eq!(listed, prefixes, "{function} lists only {prefixes:?}");
    }
    // Result files are all a function writes under batch/, and the code names them so.
    for key in ["batch/receipt.jpg", "batch/trip/"] {
        let id = docusnap_core::TaskId::new(docusnap_core::ClientId::batch(key), docusnap_core::TaskType::Doc, "ab");
        assert!(docusnap_core::batch::result_key(&id).unwrap().ends_with("result.json"));
    }

    let log_groups: BTreeSet<String> = template
        .resources_of_type("AWS::Logs::LogGroup")
        .into_iter()
        .filter_map(|(_, group)| {
            assert!(group.get("RetentionInDays").is_some(), "{group:?} keeps its logs forever");
            let (_, name) = intrinsic(group.get("LogGroupName")?)?;
            scalar(&name)
        })
        .collect();
    for function in ["UploadFunction", "OcrFunction", "ExtractFunction"] {
        assert!(
            log_groups.contains(&format!("/aws/lambda/${{{function}}}")),
            "{function} has no log group: {log_groups:?}"
        );
    }
    let api = &template.resource("HttpApi").unwrap()["Properties"];
    assert_eq!(target(&api["AccessLogSettings"]["DestinationArn"]).as_deref(), Some("ApiAccessLogs"));
    assert!(!api["AccessLogSettings"]["Format"].as_str().unwrap().contains("body"));

    let ocr_events = &template.resource("OcrFunction").unwrap()["Properties"]["Events"];
    let ocr_mapping = ocr_events.as_mapping().unwrap().values().next().unwrap();
    assert_eq!(
        target(&ocr_mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"]).as_deref(),
        Some("OcrMaxConcurrency")
    );
    assert!(template.resource("UploadFunction").unwrap()["Properties"].get("ReservedConcurrentExecutions").is_some());
    assert_eq!(
        template.parameter_default("AllowedOrigins").as_deref(),
        Some(""),
        "no CORS unless an operator names origins"
    );
}

/// A rising share of tasks answered by the rules because the LLM failed is alarmed on,
/// from the metric the extract function writes, at the rate the operator chose; Bedrock,
/// when chosen, may be invoked for the configured model and nothing else.
#[test]
fn the_llm_fallback_rate_is_alarmed_and_bedrock_is_allowed_one_model() {
    use docusnap_core::task::ExtractorKind;
    let template = template();
    let alarm = template.resource("LlmFallbackAlarm").expect("LlmFallbackAlarm")["Properties"].clone();
    assert_eq!(alarm["Threshold"].clone(), serde_yaml_ng::from_str::<Value>("!Ref LlmFallbackAlarmRate").unwrap());
    let queries = alarm["Metrics"].as_sequence().unwrap();
    let watched: BTreeMap<String, (String, String)> = queries
        .iter()
        .filter_map(|q| {
            let metric = q.get("MetricStat")?.get("Metric")?;
            let dimensions = metric["Dimensions"].as_sequence()?;
            let function = dimensions.iter().find(|d| d["Name"] == "Function").and_then(|d| target(&d["Value"]))?;
            let extractor = dimensions.iter().find(|d| d["Name"] == "Extractor").and_then(|d| scalar(&d["Value"]))?;
            assert_eq!(metric["MetricName"].as_str(), Some(docusnap_core::metrics::name::EXTRACTIONS));
            Some((scalar(&q["Id"])?, (function, extractor)))
        })
        .collect();
    assert_eq!(watched["fallback"], ("ExtractFunction".to_string(), ExtractorKind::RulesFallback.label().to_string()));
    assert_eq!(
        watched["llm"],
        ("ExtractFunction".to_string(), ExtractorKind::Llm { model: String::new(), format: None }.label().to_string())
    );
    let rate = queries.iter().find(|q| q["ReturnData"].as_bool() == Some(true)).unwrap();
    let expression = rate["Expression"].as_str().unwrap();
    assert!(expression.starts_with("FILL(fallback, 0) /") && expression.contains("FILL(llm, 0)"), "{expression}");

    // The grant itself (InvokeModel on that model's ARN only) is checked with every other
    // in each_function_may_do_only_what_its_code_does.
    let extract = template.resource("ExtractFunction").unwrap();
    let variables = &extract["Properties"]["Environment"]["Variables"];
    let model = serde_yaml_ng::to_string(&variables["DOCUSNAP_LLM_MODEL"]).unwrap();
    assert!(model.contains("UsesBedrock") && model.contains("BedrockModelId"), "{model}");
}

/// The DocuSnap metric names a dashboard body (JSON after `!Sub`) and the alarms read.
fn docusnap_metrics(value: &serde_json::Value, names: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Array(items) => {
            if items.first().and_then(|v| v.as_str()) == Some("DocuSnap") {
                if let Some(name) = items.get(1).and_then(|v| v.as_str()) {
                    names.insert(name.to_owned());
                }
            }
            items.iter().for_each(|item| docusnap_metrics(item, names));
        }
        serde_json::Value::Object(map) => {
            if let Some(expression) = map.get("expression").and_then(|v| v.as_str()) {
                for part in expression.split("MetricName=\"").skip(1) {
                    names.insert(part.split('"').next().unwrap_or_default().to_owned());
                }
            }
            map.values().for_each(|v| docusnap_metrics(v, names));
        }
        _ => {}
    }
}

#[test]
fn the_dashboard_and_alarms_name_only_metrics_the_functions_emit() {
    let template = template();
    let emitted: BTreeSet<String> = docusnap_core::metrics::name::ALL.iter().map(|n| n.to_string()).collect();
    let dashboards = template.resources_of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = dashboards[0].1.get("DashboardBody").and_then(intrinsic).and_then(|(_, text)| scalar(&text)).unwrap();
    // `!Sub`'s references become plain strings, so the body parses as CloudWatch reads it.
    let mut plain = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        plain.push_str("resolved");
        rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
    }
    plain.push_str(rest);
    let body: serde_json::Value = serde_json::from_str(&plain).expect("the dashboard body is JSON");
    let mut named = BTreeSet::new();
    docusnap_metrics(&body, &mut named);
    for wanted in ["OcrPageMs", "ExtractMs", "DeadLetters", "Extractions", "LlmInputTokens", "Refusals", "TaskFailures"]
    {
        assert!(named.contains(wanted), "the dashboard shows {wanted}");
    }
    for (id, alarm) in template.resources_of_type("AWS::CloudWatch::Alarm") {
        let text = serde_json::to_value(&alarm).unwrap();
        let mut stack = vec![&text];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    if map.get("Namespace").and_then(|v| v.as_str()) == Some("DocuSnap") {
                        let name = map["MetricName"].as_str().unwrap_or_default();
                        assert!(emitted.contains(name), "{id} watches {name}, which no function emits");
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }
    let unknown: Vec<_> = named.difference(&emitted).collect();
    assert!(unknown.is_empty(), "the dashboard names metrics no function emits: {unknown:?}");
}
