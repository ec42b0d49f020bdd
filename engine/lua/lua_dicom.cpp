// The dicom module: dicom.uid, dicom.keywords and dicom.json (keyword tables
// and the DICOM JSON model), and reports wrapped as DICOM instances of their
// study, returned as Part-10 bytes: dicom.wrap_pdf (Encapsulated PDF) and
// dicom.text_sr (Basic Text SR), see engine/dicom/report_instance.h.
#include <cctype>
#include <initializer_list>

#include "engine/dicom/keyword_json.h"
#include "engine/dicom/report_instance.h"
#include "engine/dicom/uid.h"
#include "engine/lua/lua_internal.h"

namespace junction::lua::detail {
namespace {

// dicom.uid(): "2.25." + the decimal value of a random UUID (ITU-T X.667).
int dicomUidL(lua_State* L) {
    lua_pushstring(L, dicom::newUid().c_str());
    return 1;
}

bool isTagKey(lua_State* L, int idx) {
    if (lua_type(L, idx) != LUA_TSTRING) return false;
    std::size_t n = 0;
    const char* k = lua_tolstring(L, idx, &n);
    if (n != 8) return false;
    for (std::size_t i = 0; i < n; ++i)
        if (!std::isxdigit(static_cast<unsigned char>(k[i]))) return false;
    return true;
}

// dicom.keywords(t): a DICOM JSON dataset ({["00100020"] = {vr = "LO", Value = {...}}})
// as a keyword table ({PatientID = "..."}). Other keys of `t` (not 8 hex
// digits, e.g. the `file` or `kind` a DICOM source adds) are kept as they are.
int dicomKeywordsL(lua_State* L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L);  // 2: the DICOM part
    lua_newtable(L);  // 3: the other keys
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);  // key, key, value
        lua_rawset(L, isTagKey(L, -2) ? 2 : 3);
    }
    std::string out;
    protect(L, [&] {
        try {
            out = dicom::dicomJsonToKeywords(jsonEncode(L, 2, false));
        } catch (const std::invalid_argument& e) {
            throw LuaError(std::string("dicom.keywords: ") + e.what());
        }
        return 0;
    });
    jsonDecodePush(L, out, "dicom.keywords");  // 4
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 4);
    }
    return 1;
}

// dicom.json(t): a keyword table as a DICOM JSON dataset (the reverse).
int dicomJsonL(lua_State* L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    std::string out;
    protect(L, [&] {
        try {
            out = dicom::keywordsToDicomJson(jsonEncode(L, 1, false));
        } catch (const std::invalid_argument& e) {
            throw LuaError(std::string("dicom.json: ") + e.what());
        }
        return 0;
    });
    jsonDecodePush(L, out, "dicom.json");
    return 1;
}

// ------------------------------------------------------------ reports

// A code table at the top of the stack: {"18748-4", "LN", "Diagnostic
// Imaging Report"} or {code = ..., scheme = ..., meaning = ...}.
dicom::Code codeAtTop(lua_State* L, const std::string& what) {
    if (!lua_istable(L, -1))
        throw LuaError(what + " must be a code: {\"18748-4\", \"LN\", \"Diagnostic Imaging Report\"} or "
                              "{code = ..., scheme = ..., meaning = ...}");
    int t = lua_gettop(L);
    dicom::Code c;
    c.value = stringField(L, t, "code", what + ".code");
    c.scheme = stringField(L, t, "scheme", what + ".scheme");
    c.meaning = stringField(L, t, "meaning", what + ".meaning");
    const char* names[] = {"value", "scheme", "meaning"};
    std::string* fields[] = {&c.value, &c.scheme, &c.meaning};
    for (int i = 0; i < 3; ++i) {
        lua_rawgeti(L, t, i + 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            std::size_t n = 0;
            const char* s = lua_tolstring(L, -1, &n);
            if (fields[i]->empty()) fields[i]->assign(s, n);
        } else if (!lua_isnil(L, -1)) {
            lua_pop(L, 1);
            throw LuaError(what + ": the code's " + names[i] + " must be a string");
        }
        lua_pop(L, 1);
    }
    if (c.value.empty() || c.scheme.empty() || c.meaning.empty())
        throw LuaError(what + " needs a code, a scheme and a meaning, e.g. {\"18748-4\", \"LN\", \"Diagnostic Imaging Report\"}");
    return c;
}

bool boolAtTop(lua_State* L, const std::string& what) {
    if (!lua_isboolean(L, -1)) throw LuaError(what + " must be true or false");
    return lua_toboolean(L, -1);
}

int intAtTop(lua_State* L, const std::string& what) {
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0 || v > 2147483647) throw LuaError(what + " must be a whole number");
    return static_cast<int>(v);
}

std::string stringAtTop(lua_State* L, const std::string& what) {
    if (lua_type(L, -1) != LUA_TSTRING) throw LuaError(what + " must be a string");
    std::size_t n = 0;
    const char* s = lua_tolstring(L, -1, &n);
    return std::string(s, n);
}

// Reads the options table at `idx` (nil: none): only the names of `allowed`.
dicom::ReportOptions reportOptions(lua_State* L, int idx, bool pdf, std::initializer_list<const char*> allowed) {
    dicom::ReportOptions o;
    if (lua_isnoneornil(L, idx)) return o;
    if (!lua_istable(L, idx)) throw LuaError("the options must be a table");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "[" + std::string(luaL_typename(L, -2)) + "]";
        bool known = false;
        for (const char* a : allowed) known = known || key == a;
        if (!known) {
            std::string list;
            for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
            lua_pop(L, 2);
            throw LuaError("unknown option '" + key + "' (" + list + ")");
        }
        std::string what = "option " + key;
        if (key == "title") {
            if (pdf) o.title = stringAtTop(L, what);
            else o.titleCode = codeAtTop(L, what);
        } else if (key == "code") {
            o.titleCode = codeAtTop(L, what);
        } else if (key == "burned_in_annotation") {
            o.burnedInAnnotation = boolAtTop(L, what);
        } else if (key == "observer") {
            o.observer = stringAtTop(L, what);
        } else if (key == "verified") {
            o.verified = boolAtTop(L, what);
        } else if (key == "organization") {
            o.organization = stringAtTop(L, what);
        } else if (key == "complete") {
            o.complete = boolAtTop(L, what);
        } else if (key == "series_description") {
            o.seriesDescription = stringAtTop(L, what);
        } else if (key == "series_number") {
            o.seriesNumber = intAtTop(L, what);
        } else if (key == "instance_number") {
            o.instanceNumber = intAtTop(L, what);
        } else if (key == "datetime") {
            o.dateTime = stringAtTop(L, what);
        }
        lua_pop(L, 1);
    }
    return o;
}

// The study argument: a table (DICOM JSON or keywords) or JSON text.
std::string studyJson(lua_State* L, int idx) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        std::size_t n = 0;
        const char* s = lua_tolstring(L, idx, &n);
        return std::string(s, n);
    }
    return jsonEncode(L, idx, false);
}

// Pushes the Part-10 bytes and the table of the instance's UIDs.
int pushInstance(lua_State* L, const dicom::ReportInstance& r) {
    pushView(L, r.bytes);
    lua_createtable(L, 0, 3);
    pushView(L, r.studyInstanceUid);
    lua_setfield(L, -2, "StudyInstanceUID");
    pushView(L, r.seriesInstanceUid);
    lua_setfield(L, -2, "SeriesInstanceUID");
    pushView(L, r.sopInstanceUid);
    lua_setfield(L, -2, "SOPInstanceUID");
    return 2;
}

using Build = dicom::ReportInstance (*)(const std::string&, std::string_view, const dicom::ReportOptions&);

// dicom.wrap_pdf(study, pdf [, options]) / dicom.text_sr(study, text [, options])
int report(lua_State* L, const char* fn, bool pdf, Build build, std::initializer_list<const char*> allowed) {
    if (!lua_istable(L, 1) && lua_type(L, 1) != LUA_TSTRING)
        luaL_argerror(L, 1, "the study: a table of its attributes (DICOM JSON or keywords) or JSON text");
    luaL_checktype(L, 2, LUA_TSTRING);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    return protect(L, [&] {
        try {
            dicom::ReportOptions o = reportOptions(L, 3, pdf, allowed);
            std::string study = studyJson(L, 1);
            dicom::ReportInstance r = build(study, checkView(L, 2), o);
            return pushInstance(L, r);
        } catch (const LuaError& e) {
            throw LuaError(std::string(fn) + ": " + e.what());
        } catch (const std::invalid_argument& e) {
            throw LuaError(std::string(fn) + ": " + e.what());
        }
    });
}

int wrapPdfL(lua_State* L) {
    return report(L, "dicom.wrap_pdf", true, dicom::encapsulatedPdf,
                  {"title", "code", "burned_in_annotation", "series_description", "series_number", "instance_number",
                   "datetime"});
}

int textSrL(lua_State* L) {
    return report(L, "dicom.text_sr", false, dicom::basicTextSr,
                  {"title", "observer", "verified", "organization", "complete", "series_description", "series_number",
                   "instance_number", "datetime"});
}

}  // namespace

void openDicom(lua_State* L) {
    const luaL_Reg funcs[] = {{"uid", dicomUidL},         {"keywords", dicomKeywordsL}, {"json", dicomJsonL},
                              {"wrap_pdf", wrapPdfL},     {"text_sr", textSrL},         {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_setglobal(L, "dicom");
}

}  // namespace junction::lua::detail
