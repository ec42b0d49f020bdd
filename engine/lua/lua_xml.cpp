// The `xml` module: Xerces-C DOM parsing into a table tree and encoding back.
//
// Tree shape: { name = "tag", attrs = { k = "v" }, children = { ...elements },
// text = "..." }. `text` is the element's own text (CDATA included); it is
// left out when the element has child elements and only whitespace between
// them. Namespaces are not interpreted: prefixed names ("hl7:PID") and xmlns
// declarations are kept as written, so they survive a round trip. DOCTYPEs,
// DTDs and external entities are refused.
#include "engine/hl7/xerces_support.h"
#include <algorithm>
#include <mutex>

#include <xercesc/dom/DOM.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/util/OutOfMemoryException.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/TransService.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>
#include <xercesc/util/XMLString.hpp>

#include "engine/lua/lua_internal.h"

namespace xc = XERCES_CPP_NAMESPACE;

namespace junction::lua::detail {
namespace {

using xerces::toUtf8;

// A parsed element, converted out of Xerces before touching Lua.
struct Element {
    std::string name;
    std::vector<std::pair<std::string, std::string>> attrs;
    std::string text;
    bool hasText = false;
    std::vector<Element> children;
};

bool allSpace(std::string_view s) {
    return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

void convert(const xc::DOMElement* e, Element& out, int depth) {
    if (depth > 500) throw LuaError("xml.parse: nesting deeper than 500 levels");
    out.name = toUtf8(e->getTagName());
    if (const xc::DOMNamedNodeMap* attrs = e->getAttributes()) {
        for (XMLSize_t i = 0; i < attrs->getLength(); ++i) {
            const xc::DOMNode* a = attrs->item(i);
            out.attrs.emplace_back(toUtf8(a->getNodeName()), toUtf8(a->getNodeValue()));
        }
    }
    for (const xc::DOMNode* c = e->getFirstChild(); c; c = c->getNextSibling()) {
        switch (c->getNodeType()) {
            case xc::DOMNode::ELEMENT_NODE:
                out.children.emplace_back();
                convert(static_cast<const xc::DOMElement*>(c), out.children.back(), depth + 1);
                break;
            case xc::DOMNode::TEXT_NODE:
            case xc::DOMNode::CDATA_SECTION_NODE: out.text += toUtf8(c->getNodeValue()); break;
            default: break;
        }
    }
    out.hasText = !out.text.empty() && (out.children.empty() || !allSpace(out.text));
}

void parseDocument(std::string_view text, Element& root) {
    std::string err;
    if (!xerces::init(err)) throw LuaError(err);
    if (allSpace(text)) throw LuaError("empty document");
    xerces::SecureParser secure(false);
    auto& parser = secure.parser;
    auto& errors = secure.errors;
    xc::MemBufInputSource source(reinterpret_cast<const XMLByte*>(text.data()), text.size(), "lua-xml", false);
    std::string fatal;
    try {
        parser.parse(source);
    } catch (const xc::OutOfMemoryException&) {
        fatal = "out of memory";
    } catch (const xc::XMLException& e) {
        fatal = toUtf8(e.getMessage());
    } catch (const xc::SAXException& e) {
        fatal = toUtf8(e.getMessage());
    } catch (const xc::DOMException& e) {
        fatal = toUtf8(e.getMessage());
    }
    if (errors.failed)
        throw LuaError("line " + std::to_string(errors.line) + ", column " + std::to_string(errors.column) + ": " +
                       errors.message);
    if (!fatal.empty()) throw LuaError(fatal);
    const xc::DOMDocument* doc = parser.getDocument();
    if (!doc || !doc->getDocumentElement()) throw LuaError("no document element");
    if (doc->getDoctype()) throw LuaError("a DOCTYPE is not allowed");
    convert(doc->getDocumentElement(), root, 0);
}

void pushElement(lua_State* L, const Element& e) {
    luaL_checkstack(L, 6, "xml nesting too deep");
    lua_createtable(L, 0, 4);
    pushView(L, e.name);
    lua_setfield(L, -2, "name");
    lua_createtable(L, 0, static_cast<int>(e.attrs.size()));
    for (const auto& [k, v] : e.attrs) {
        pushView(L, v);
        lua_setfield(L, -2, k.c_str());
    }
    lua_setfield(L, -2, "attrs");
    lua_createtable(L, static_cast<int>(e.children.size()), 0);
    lua_Integer i = 0;
    for (const Element& c : e.children) {
        pushElement(L, c);
        lua_rawseti(L, -2, ++i);
    }
    lua_setfield(L, -2, "children");
    if (e.hasText) {
        pushView(L, e.text);
        lua_setfield(L, -2, "text");
    }
}

// ------------------------------------------------------------ encoder

void appendEscaped(std::string& out, std::string_view s, bool attr) {
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"':
                if (attr) out += "&quot;";
                else out += c;
                break;
            case '\n':
                if (attr) out += "&#10;";
                else out += c;
                break;
            case '\r': out += "&#13;"; break;
            case '\t':
                if (attr) out += "&#9;";
                else out += c;
                break;
            default: out += c;
        }
    }
}

bool validName(std::string_view n) {
    if (n.empty()) return false;
    for (char c : n) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                          c == '-' || c == '.' || c == ':'))
            return false;
    }
    char f = n[0];
    return !(f == '-' || f == '.' || (f >= '0' && f <= '9'));
}

std::string fieldString(lua_State* L, int t, const char* key, bool required) {
    lua_pushstring(L, key);
    int type = lua_rawget(L, t);
    std::string s;
    if (type == LUA_TSTRING || type == LUA_TNUMBER) {
        std::size_t n;
        lua_pushvalue(L, -1);
        const char* p = lua_tolstring(L, -1, &n);
        s.assign(p, n);
        lua_pop(L, 1);
    } else if (type != LUA_TNIL || required) {
        lua_pop(L, 1);
        throw LuaError(std::string("xml.encode: element field '") + key + "' must be a string");
    }
    lua_pop(L, 1);
    return s;
}

void encodeElement(lua_State* L, int t, std::string& out, int depth) {
    if (depth > 500) throw LuaError("xml.encode: nesting deeper than 500 levels (circular tree?)");
    if (lua_type(L, t) != LUA_TTABLE) throw LuaError("xml.encode: an element must be a table {name=..., ...}");
    if (!lua_checkstack(L, 8)) throw LuaError("xml.encode: nesting too deep");
    std::string name = fieldString(L, t, "name", true);
    if (!validName(name)) throw LuaError("xml.encode: invalid element name '" + name + "'");
    out += '<';
    out += name;
    lua_pushliteral(L, "attrs");
    if (lua_rawget(L, t) == LUA_TTABLE) {
        int a = lua_gettop(L);
        std::vector<std::pair<std::string, std::string>> attrs;
        lua_pushnil(L);
        while (lua_next(L, a)) {
            if (lua_type(L, -2) != LUA_TSTRING) throw LuaError("xml.encode: attribute names must be strings");
            int vt = lua_type(L, -1);
            if (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN)
                throw LuaError("xml.encode: attribute values must be strings, numbers or booleans");
            std::size_t kn, vn;
            const char* k = lua_tolstring(L, -2, &kn);
            std::string v;
            if (vt == LUA_TBOOLEAN) {
                v = lua_toboolean(L, -1) ? "true" : "false";
            } else {
                lua_pushvalue(L, -1);
                const char* vs = lua_tolstring(L, -1, &vn);
                v.assign(vs, vn);
                lua_pop(L, 1);
            }
            attrs.emplace_back(std::string(k, kn), std::move(v));
            lua_pop(L, 1);
        }
        std::sort(attrs.begin(), attrs.end());
        for (const auto& [k, v] : attrs) {
            if (!validName(k)) throw LuaError("xml.encode: invalid attribute name '" + k + "'");
            out += ' ';
            out += k;
            out += "=\"";
            appendEscaped(out, v, true);
            out += '"';
        }
    }
    lua_pop(L, 1);
    std::string text = fieldString(L, t, "text", false);
    lua_pushliteral(L, "children");
    int ct = lua_rawget(L, t);
    int c = lua_gettop(L);
    lua_Integer n = ct == LUA_TTABLE ? static_cast<lua_Integer>(lua_rawlen(L, c)) : 0;
    if (ct != LUA_TTABLE && ct != LUA_TNIL) throw LuaError("xml.encode: 'children' must be an array of elements");
    if (text.empty() && n == 0) {
        out += "/>";
        lua_pop(L, 1);
        return;
    }
    out += '>';
    appendEscaped(out, text, false);
    for (lua_Integer i = 1; i <= n; ++i) {
        lua_rawgeti(L, c, i);
        if (lua_type(L, -1) == LUA_TSTRING) {  // tolerated: a text child
            std::size_t sn;
            const char* s = lua_tolstring(L, -1, &sn);
            appendEscaped(out, {s, sn}, false);
        } else {
            encodeElement(L, lua_gettop(L), out, depth + 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out += "</";
    out += name;
    out += '>';
}

int xmlParseL(lua_State* L) {
    std::string_view text = checkView(L, 1);
    lua_settop(L, 1);
    xmlDecodePush(L, text, "xml.parse");
    return 1;
}

int xmlEncodeL(lua_State* L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    bool decl = false;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "declaration");
        decl = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    return protect(L, [&] {
        std::string s = decl ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" : "";
        s += xmlEncode(L, 1);
        pushView(L, s);
        return 1;
    });
}

}  // namespace

void xmlDecodePush(lua_State* L, std::string_view text, const char* what) {
    protect(L, [&] {
        Element root;
        try {
            parseDocument(text, root);
        } catch (const LuaError& e) {
            throw LuaError(std::string(what) + ": " + e.message);
        }
        pushElement(L, root);
        return 1;
    });
}

std::string xmlEncode(lua_State* L, int idx) {
    std::string out;
    int top = lua_gettop(L);
    encodeElement(L, lua_absindex(L, idx), out, 0);
    lua_settop(L, top);
    return out;
}

void openXml(lua_State* L) {
    const luaL_Reg funcs[] = {{"parse", xmlParseL}, {"encode", xmlEncodeL}, {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_setglobal(L, "xml");
}

}  // namespace junction::lua::detail
