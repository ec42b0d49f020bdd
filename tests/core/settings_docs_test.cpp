// The docs show what the settings declarations say: docs/channel.schema.json
// is `junction schema` and every settings table of docs/channels.md is the
// block `junction schema --markdown` prints (scripts/docs.sh rewrites both).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "engine/core/channel_config.h"
#include "tests/support/connectors.h"

using namespace junction;

namespace {

std::string readDoc(const std::string& name) {
    std::ifstream in(std::string(JUNCTION_SOURCE_DIR) + "/docs/" + name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

TEST_CASE("docs/channels.md has the settings tables the declarations generate", "[core][docs]") {
    std::string doc = readDoc("channels.md");
    REQUIRE_FALSE(doc.empty());
    std::string generated = core::channelSettingsMarkdown(testing::connectorRegistry());
    const std::string end = "<!-- end of generated ";
    int blocks = 0;
    for (std::size_t at = generated.find("<!-- generated: "); at != std::string::npos;
         at = generated.find("<!-- generated: ", at + 1)) {
        std::size_t stop = generated.find(end, at);
        REQUIRE(stop != std::string::npos);
        stop = generated.find('\n', stop) + 1;
        std::string block = generated.substr(at, stop - at);
        std::string marker = block.substr(0, block.find('\n'));
        INFO("stale block " << marker << ": run scripts/docs.sh");
        std::size_t inDoc = doc.find(marker);
        REQUIRE(inDoc != std::string::npos);
        std::size_t docStop = doc.find(end, inDoc);
        REQUIRE(docStop != std::string::npos);
        docStop = doc.find('\n', docStop) + 1;
        CHECK(doc.substr(inDoc, docStop - inDoc) == block);
        ++blocks;
    }
    CHECK(blocks == 3);
}

TEST_CASE("docs/channel.schema.json is the generated schema", "[core][docs]") {
    INFO("run scripts/docs.sh");
    CHECK(readDoc("channel.schema.json") == core::channelJsonSchema(testing::connectorRegistry()) + "\n");
}
