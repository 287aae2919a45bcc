//! The result s3ferry writes itself for a copy it streamed through (`gateway::answers::copy_through`).

/// A `CopyObjectResult`, or for an UploadPartCopy (`part`) a `CopyPartResult`, with the copy's
/// time and ETag (in the client's form).
pub fn render_copy_result(part: bool, last_modified: &str, etag: &str) -> String {
    let element = if part { "CopyPartResult" } else { "CopyObjectResult" };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{element} xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>{}</LastModified><ETag>{}</ETag></{element}>",
        quick_xml::escape::escape(last_modified),
        quick_xml::escape::escape(etag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_results_escape_their_etag() {
        assert_eq!(
            render_copy_result(true, "2026-11-30T00:00:00Z", "\"a&b\""),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>2026-11-30T00:00:00Z</LastModified><ETag>&quot;a&amp;b&quot;</ETag></CopyPartResult>"
        );
    }
}
