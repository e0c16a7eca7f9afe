//! Image generation (`llm/v1/images`): the OpenAI `images/generations` request read once, and its
//! translation to Amazon Titan Image Generator (Bedrock InvokeModel) and Google Imagen (Vertex AI
//! `predict`). OpenAI and Azure OpenAI take the request as it is and answer in the same shape.
//!
//! Both translated providers return the images themselves (base64), never URLs, so a request for
//! `response_format: url` is refused rather than answered in another shape than asked.

use serde::Deserialize;
use serde_json::Value;

use crate::shared::{flatten_databricks_fields, now_secs, unsupported};
use crate::{Body, ProviderError};

/// What an image request asks for, in the terms every provider understands.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    /// What to draw.
    pub prompt: String,
    /// What not to draw (`negative_prompt`, our extension).
    pub negative_prompt: Option<String>,
    /// How many images.
    pub n: u32,
    /// Width and height in pixels, if given.
    pub size: Option<(u32, u32)>,
    /// `quality`, as the client wrote it.
    pub quality: Option<String>,
    /// `output_format` (`png`, `jpeg`, `webp`).
    pub output_format: Option<String>,
    /// `seed` (our extension): the same seed and prompt draw the same image where the model allows.
    pub seed: Option<u64>,
}

/// The fields a translated provider can express; anything else is refused by name.
const FIELDS: &[&str] =
    &["model", "prompt", "negative_prompt", "n", "size", "quality", "response_format", "output_format", "seed", "user"];

#[derive(Deserialize)]
struct Fields {
    prompt: String,
    #[serde(default)]
    negative_prompt: Option<String>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    quality: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    output_format: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
}

impl ImageRequest {
    /// Reads `body` for `provider`, refusing what that provider cannot express.
    pub fn read(provider: &str, mut body: Body) -> Result<ImageRequest, ProviderError> {
        flatten_databricks_fields(&mut body)?;
        if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(unsupported(provider, &format!("the image option '{k}'")));
        }
        let f: Fields = serde_json::from_value(Value::Object(body))
            .map_err(|e| ProviderError::Unsupported(format!("invalid image request: {e}")))?;
        if f.response_format.as_deref().is_some_and(|r| r != "b64_json") {
            return Err(unsupported(
                provider,
                "response_format 'url' (it returns the images themselves; ask for response_format b64_json)",
            ));
        }
        let size = match f.size.as_deref() {
            None | Some("auto") => None,
            Some(s) => Some(parse_size(s).ok_or_else(|| {
                ProviderError::Unsupported(format!("size '{s}' is not WIDTHxHEIGHT in pixels (such as 1024x1024)"))
            })?),
        };
        Ok(ImageRequest {
            prompt: f.prompt,
            negative_prompt: f.negative_prompt,
            n: f.n.unwrap_or(1),
            size,
            quality: f.quality,
            output_format: f.output_format,
            seed: f.seed,
        })
    }
}

fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    Some((w.parse().ok().filter(|w| *w > 0)?, h.parse().ok().filter(|h| *h > 0)?))
}

/// The OpenAI images answer for base64 images: `{"created", "data": [{"b64_json"}]}`.
pub fn answer(images: Vec<String>) -> String {
    let data: Vec<Value> = images.into_iter().map(|b64| serde_json::json!({ "b64_json": b64 })).collect();
    serde_json::json!({ "created": now_secs(), "data": data }).to_string()
}

/// Amazon Titan Image Generator (`amazon.titan-image-generator-v1`, `-v2:0`) on Bedrock.
pub mod titan {
    use super::*;

    /// Titan's `quality` from OpenAI's: `hd` and `high` are `premium`, the rest `standard`.
    fn quality(q: Option<&str>) -> Result<&'static str, ProviderError> {
        match q {
            None | Some("auto" | "standard" | "low" | "medium") => Ok("standard"),
            Some("hd" | "high" | "premium") => Ok("premium"),
            Some(other) => Err(ProviderError::Unsupported(format!(
                "quality '{other}' is not one of standard, hd (premium), low, medium, high, auto"
            ))),
        }
    }

    /// The InvokeModel body of a text-to-image request.
    pub fn request(r: ImageRequest) -> Result<wire::Request, ProviderError> {
        if r.output_format.as_deref().is_some_and(|f| f != "png") {
            return Err(unsupported("amazon-bedrock", "an output_format other than png for Titan images"));
        }
        let (width, height) = r.size.unwrap_or((1024, 1024));
        Ok(wire::Request {
            task_type: "TEXT_IMAGE",
            text_to_image_params: wire::TextToImage { text: r.prompt, negative_text: r.negative_prompt },
            image_generation_config: wire::Config {
                number_of_images: r.n,
                width,
                height,
                quality: quality(r.quality.as_deref())?,
                seed: r.seed,
            },
        })
    }

    /// The images of a Titan answer; an `error` in it (a filtered prompt) is the provider's refusal.
    pub fn images(r: wire::Response) -> Result<Vec<String>, ProviderError> {
        match r.error {
            Some(e) if !e.is_empty() => {
                Err(ProviderError::Upstream { status: 400, message: format!("Titan: {e}"), retry_after: None })
            }
            _ => Ok(r.images),
        }
    }

    /// Titan's wire format.
    pub mod wire {
        use serde::{Deserialize, Serialize};

        /// An InvokeModel request body.
        #[derive(Debug, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct Request {
            /// `TEXT_IMAGE`.
            pub task_type: &'static str,
            /// The prompt.
            pub text_to_image_params: TextToImage,
            /// Count, size, quality, seed.
            pub image_generation_config: Config,
        }

        /// `textToImageParams`.
        #[derive(Debug, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct TextToImage {
            /// The prompt.
            pub text: String,
            /// What not to draw.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub negative_text: Option<String>,
        }

        /// `imageGenerationConfig`.
        #[derive(Debug, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct Config {
            /// 1 to 5.
            pub number_of_images: u32,
            /// Pixels.
            pub width: u32,
            /// Pixels.
            pub height: u32,
            /// `standard` or `premium`.
            pub quality: &'static str,
            /// Seed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub seed: Option<u64>,
        }

        /// An InvokeModel answer.
        #[derive(Debug, Default, Deserialize)]
        pub struct Response {
            /// Base64 PNGs.
            #[serde(default)]
            pub images: Vec<String>,
            /// Why nothing was drawn.
            #[serde(default)]
            pub error: Option<String>,
        }
    }
}

/// Google Imagen (`imagen-4.0-generate-001`, `imagen-3.0-generate-002`, ...) on Vertex AI.
pub mod imagen {
    use super::*;

    /// The aspect ratios Imagen draws.
    const RATIOS: [(u32, u32, &str); 5] =
        [(1, 1, "1:1"), (3, 4, "3:4"), (4, 3, "4:3"), (9, 16, "9:16"), (16, 9, "16:9")];

    fn aspect_ratio((w, h): (u32, u32)) -> Result<&'static str, ProviderError> {
        // Within 2 %: 1792x1024 is 16:9 as near as OpenAI's sizes get.
        let r = f64::from(w) / f64::from(h);
        RATIOS
            .iter()
            .find(|(a, b, _)| (r / (f64::from(*a) / f64::from(*b)) - 1.0).abs() < 0.02)
            .map(|t| t.2)
            .ok_or_else(|| {
                ProviderError::Unsupported(format!(
                    "size {w}x{h}: Imagen draws the aspect ratios 1:1, 3:4, 4:3, 9:16 and 16:9 only \
                     (such as 1024x1024, 1792x1024, 1024x1792)"
                ))
            })
    }

    /// The `predict` body of a text-to-image request.
    pub fn request(r: ImageRequest) -> Result<wire::Request, ProviderError> {
        if r.quality.as_deref().is_some_and(|q| !["auto", "standard"].contains(&q)) {
            return Err(unsupported("google-cloud-vertex-ai", "quality other than standard or auto for Imagen"));
        }
        let mime_type = match r.output_format.as_deref() {
            None => None,
            Some("png") => Some("image/png"),
            Some("jpeg") => Some("image/jpeg"),
            Some(other) => {
                return Err(unsupported("google-cloud-vertex-ai", &format!("output_format '{other}' for Imagen")));
            }
        };
        Ok(wire::Request {
            instances: vec![wire::Instance { prompt: r.prompt }],
            parameters: wire::Parameters {
                sample_count: r.n,
                aspect_ratio: r.size.map(aspect_ratio).transpose()?,
                // Imagen's larger size, for sizes past 1K.
                sample_image_size: r.size.filter(|(w, h)| (*w).max(*h) > 1536).map(|_| "2K"),
                negative_prompt: r.negative_prompt,
                seed: r.seed,
                output_options: mime_type.map(|mime_type| wire::OutputOptions { mime_type }),
            },
        })
    }

    /// The images of an Imagen answer. Imagen drops the images its safety filter removes; when it
    /// removed all of them, that is the answer's refusal.
    pub fn images(r: wire::Response) -> Result<Vec<String>, ProviderError> {
        let mut reasons = Vec::new();
        let mut images = Vec::new();
        for p in r.predictions {
            match (p.bytes_base64_encoded, p.rai_filtered_reason) {
                (Some(b), _) => images.push(b),
                (None, Some(why)) => reasons.push(why),
                (None, None) => {}
            }
        }
        if images.is_empty() {
            let why = if reasons.is_empty() { "no image in the answer".to_string() } else { reasons.join("; ") };
            return Err(ProviderError::Upstream {
                status: 400,
                message: format!("Imagen drew no image: {why}"),
                retry_after: None,
            });
        }
        Ok(images)
    }

    /// Imagen's wire format.
    pub mod wire {
        use serde::{Deserialize, Serialize};

        /// A `predict` request body.
        #[derive(Debug, Serialize)]
        pub struct Request {
            /// One instance: the prompt.
            pub instances: Vec<Instance>,
            /// Count, aspect ratio, ...
            pub parameters: Parameters,
        }

        /// An instance.
        #[derive(Debug, Serialize)]
        pub struct Instance {
            /// What to draw.
            pub prompt: String,
        }

        /// `parameters`.
        #[derive(Debug, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct Parameters {
            /// 1 to 4.
            pub sample_count: u32,
            /// `1:1`, `3:4`, `4:3`, `9:16`, `16:9`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub aspect_ratio: Option<&'static str>,
            /// `1K` or `2K`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sample_image_size: Option<&'static str>,
            /// What not to draw.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub negative_prompt: Option<String>,
            /// Seed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub seed: Option<u64>,
            /// The image format.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub output_options: Option<OutputOptions>,
        }

        /// `outputOptions`.
        #[derive(Debug, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct OutputOptions {
            /// `image/png` or `image/jpeg`.
            pub mime_type: &'static str,
        }

        /// A `predict` answer.
        #[derive(Debug, Default, Deserialize)]
        pub struct Response {
            /// One per image drawn (or filtered out).
            #[serde(default)]
            pub predictions: Vec<Prediction>,
        }

        /// One image.
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct Prediction {
            /// The image, base64.
            #[serde(default)]
            pub bytes_base64_encoded: Option<String>,
            /// Why the safety filter removed it.
            #[serde(default)]
            pub rai_filtered_reason: Option<String>,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(provider: &str, v: Value) -> Result<ImageRequest, ProviderError> {
        match v {
            Value::Object(b) => ImageRequest::read(provider, b),
            _ => unreachable!("a test body is an object"),
        }
    }

    #[test]
    fn titan_gets_size_count_quality_and_negative_prompt() {
        let r = read(
            "amazon-bedrock",
            json!({"model": "img", "prompt": "a red kite", "n": 2, "size": "512x768", "quality": "hd",
                   "negative_prompt": "blurry", "seed": 7, "response_format": "b64_json"}),
        )
        .unwrap();
        let body = serde_json::to_value(titan::request(r).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a red kite", "negativeText": "blurry"},
                   "imageGenerationConfig": {"numberOfImages": 2, "width": 512, "height": 768, "quality": "premium", "seed": 7}})
        );
        let plain = titan::request(read("amazon-bedrock", json!({"prompt": "x"})).unwrap()).unwrap();
        assert_eq!((plain.image_generation_config.width, plain.image_generation_config.quality), (1024, "standard"));
    }

    #[test]
    fn imagen_gets_an_aspect_ratio_and_refuses_sizes_it_cannot_draw() {
        let r = read(
            "google-cloud-vertex-ai",
            json!({"prompt": "a kite", "n": 3, "size": "1792x1024", "output_format": "jpeg"}),
        )
        .unwrap();
        let body = serde_json::to_value(imagen::request(r).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"instances": [{"prompt": "a kite"}], "parameters": {"sampleCount": 3, "aspectRatio": "16:9",
                   "sampleImageSize": "2K", "outputOptions": {"mimeType": "image/jpeg"}}})
        );
        let odd = read("google-cloud-vertex-ai", json!({"prompt": "x", "size": "1000x300"})).unwrap();
        assert!(imagen::request(odd).unwrap_err().to_string().contains("aspect ratios"));
    }

    #[test]
    fn what_cannot_be_expressed_is_refused_by_name() {
        for (body, says) in [
            (json!({"prompt": "x", "style": "vivid"}), "'style'"),
            (json!({"prompt": "x", "response_format": "url"}), "response_format 'url'"),
            (json!({"prompt": "x", "size": "big"}), "size 'big'"),
            (json!({"n": 1}), "prompt"),
        ] {
            let e = read("amazon-bedrock", body).unwrap_err().to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
        let webp = read("amazon-bedrock", json!({"prompt": "x", "output_format": "webp"})).unwrap();
        assert!(titan::request(webp).is_err());
    }

    #[test]
    fn answers_become_openai_images_and_refusals_errors() {
        let ok = titan::images(serde_json::from_value(json!({"images": ["aGk=", "aGk="]})).unwrap()).unwrap();
        let v: Value = serde_json::from_str(&answer(ok)).unwrap();
        assert_eq!(v["data"], json!([{"b64_json": "aGk="}, {"b64_json": "aGk="}]));
        assert!(v["created"].as_i64().unwrap() > 0);
        let filtered =
            titan::images(serde_json::from_value(json!({"images": [], "error": "blocked by filter"})).unwrap());
        assert!(matches!(filtered, Err(ProviderError::Upstream { status: 400, .. })));
        let some = imagen::images(
            serde_json::from_value(json!({"predictions": [{"bytesBase64Encoded": "aGk=", "mimeType": "image/png"},
                                                         {"raiFilteredReason": "unsafe"}]}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(some, vec!["aGk="]);
        let none =
            imagen::images(serde_json::from_value(json!({"predictions": [{"raiFilteredReason": "unsafe"}]})).unwrap());
        assert!(none.unwrap_err().to_string().contains("unsafe"));
    }
}
