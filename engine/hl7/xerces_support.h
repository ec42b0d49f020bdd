// Internal to Junction's XML code (engine/hl7/xml.cpp, engine/lua/lua_xml.cpp):
// Xerces-C start-up, UTF-16 → UTF-8, and a DOM parser hardened against DTDs,
// external entities and entity expansion. Not for use across other modules.
#pragma once

#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>

#include <cstddef>
#include <string>

namespace junction::xerces {

namespace xc = XERCES_CPP_NAMESPACE;

// Initializes Xerces once per process (never terminated: other threads may
// still use it at exit). False with `error` set when it cannot start.
bool init(std::string& error);

void appendUtf8(std::string& out, char32_t codePoint);
std::string toUtf8(const XMLCh* s);
std::string toUtf8(const XMLCh* s, std::size_t n);

// Keeps the first parse error with its position.
class ErrorCollector : public xc::ErrorHandler {
public:
    bool failed = false;
    std::string message;
    XMLFileLoc line = 0, column = 0;
    void warning(const xc::SAXParseException&) override {}
    void error(const xc::SAXParseException& e) override { record(e); }
    void fatalError(const xc::SAXParseException& e) override { record(e); }
    void resetErrors() override {}

private:
    void record(const xc::SAXParseException& e);
};

// Refuses every external entity and DTD.
class NoExternalEntities : public xc::XMLEntityResolver {
public:
    xc::InputSource* resolveEntity(xc::XMLResourceIdentifier*) override;
};

// A DOM parser that loads no DTD or schema, resolves no external entity and
// expands at most 100 entities. Parse with `parser`; errors land in `errors`.
struct SecureParser {
    ErrorCollector errors;
    NoExternalEntities resolver;
    xc::SecurityManager security;
    xc::XercesDOMParser parser;  // declared last: it refers to the members above
    explicit SecureParser(bool namespaces);
};

}  // namespace junction::xerces
