// io::json::dump_pretty: the indented layout shared by zae-ckpt --json, the CSV logger's
// sidecars and TensorBoard's config text; it must parse back to the same document.
#include <gtest/gtest.h>

#include <string>

#include "io/json.h"

namespace {

namespace json = zae::io::json;

TEST(JsonDumpPretty, IndentsTwoSpacesPerLevelAndRoundTrips) {
  const std::string text = R"({"a":1,"b":[true,null,"x\n"],"c":{},"d":[],"e":{"f":[{"g":-2.5e-300}]}})";
  const json::Value v = json::parse(text, "test");
  const std::string pretty = json::dump_pretty(v);
  EXPECT_EQ(pretty,
            "{\n"
            "  \"a\": 1,\n"
            "  \"b\": [\n"
            "    true,\n"
            "    null,\n"
            "    \"x\\n\"\n"
            "  ],\n"
            "  \"c\": {},\n"
            "  \"d\": [],\n"
            "  \"e\": {\n"
            "    \"f\": [\n"
            "      {\n"
            "        \"g\": -2.5e-300\n"
            "      }\n"
            "    ]\n"
            "  }\n"
            "}");
  EXPECT_EQ(json::dump(json::parse(pretty, "pretty")), json::dump(v));
}

TEST(JsonDumpPretty, ScalarsAreWrittenAsTheyAre) {
  EXPECT_EQ(json::dump_pretty(json::parse("42", "t")), "42");
  EXPECT_EQ(json::dump_pretty(json::parse("\"s\"", "t")), "\"s\"");
}

}  // namespace
