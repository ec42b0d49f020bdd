// Xerces-C support for Junction's XML code (xerces_support.h): start-up,
// UTF-16 to UTF-8, error collection and the hardened DOM parser.
#include "engine/hl7/xerces_support.h"

#include <xercesc/sax/SAXException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/XMLString.hpp>

#include <mutex>

namespace junction::xerces {

void appendUtf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

bool init(std::string& error) {
    static std::once_flag once;
    static std::string initError;
    std::call_once(once, [] {
        try {
            xc::XMLPlatformUtils::Initialize();
        } catch (const xc::XMLException& e) {
            initError = "cannot initialize Xerces-C: " + toUtf8(e.getMessage());
        } catch (...) {
            initError = "cannot initialize Xerces-C";
        }
    });
    error = initError;
    return initError.empty();
}

std::string toUtf8(const XMLCh* s, std::size_t n) {
    std::string out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        char32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (s[i + 1] - 0xDC00);
            ++i;
        }
        appendUtf8(out, c);
    }
    return out;
}

std::string toUtf8(const XMLCh* s) {
    if (!s) return {};
    return toUtf8(s, xc::XMLString::stringLen(s));
}

void ErrorCollector::record(const xc::SAXParseException& e) {
    if (failed) return;
    failed = true;
    message = toUtf8(e.getMessage());
    line = e.getLineNumber();
    column = e.getColumnNumber();
}

xc::InputSource* NoExternalEntities::resolveEntity(xc::XMLResourceIdentifier*) {
    throw xc::SAXException("external entities are not allowed");
}

SecureParser::SecureParser(bool namespaces) {
    security.setEntityExpansionLimit(100);
    parser.setValidationScheme(xc::XercesDOMParser::Val_Never);
    parser.setDoNamespaces(namespaces);
    parser.setDoSchema(false);
    parser.setHandleMultipleImports(false);
    parser.setLoadExternalDTD(false);
    parser.setLoadSchema(false);
    parser.setSkipDTDValidation(true);
    parser.setCreateEntityReferenceNodes(false);
    parser.setDisableDefaultEntityResolution(true);
    parser.setSecurityManager(&security);
    parser.setXMLEntityResolver(&resolver);
    parser.setErrorHandler(&errors);
    parser.setCreateCommentNodes(false);
}

}  // namespace junction::xerces
