//! The router: the terminal HTTP filter that sends the request where the matched route says.

use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::listener::RouterFilter;

use flowplane_domain::error::Path;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::any;

impl HttpFilterConfig for RouterFilter {
    const NAME: &'static str = "envoy.filters.http.router";

    /// The domain router has no options yet; Envoy's defaults apply.
    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        Ok(any(&Router::default()))
    }
}
