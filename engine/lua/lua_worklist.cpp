// The worklist module: worklist.upsert / complete / cancel / set_status / find
// over the engine's modality worklist (store::WorklistStore). Items are keyword
// tables (engine/dicom/keyword_json.h), stored as DICOM JSON.
#include "engine/dicom/keyword_json.h"
#include "engine/lua/lua_internal.h"
#include "engine/store/worklist_store.h"

namespace junction::lua::detail {
namespace {

// The invocation's worklist; raises a Lua error when there is none (no C++
// object is alive in the callers at that point).
store::WorklistStore& worklistOf(lua_State* L, const char* fn) {
    Invocation* inv = runtime(L).inv;
    if (!inv) luaL_error(L, "%s can only be called while a message is processed (inside a function)", fn);
    if (!inv->worklist) luaL_error(L, "%s: no worklist is available here (run the channel in the engine)", fn);
    return *inv->worklist;
}

// Reads t[field] as a string (numbers converted); throws LuaError otherwise.
std::string stringField(lua_State* L, const char* fn, const char* field) {
    std::size_t n = 0;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_pushvalue(L, -1);
        const char* s = lua_tolstring(L, -1, &n);
        std::string out(s, n);
        lua_pop(L, 1);
        return out;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        throw LuaError(std::string(fn) + ": " + field + " must be a string, not a " + luaL_typename(L, -1));
    const char* s = lua_tolstring(L, -1, &n);
    return std::string(s, n);
}

// worklist.upsert(item) → id
int upsertL(lua_State* L) {
    store::WorklistStore& wl = worklistOf(L, "worklist.upsert");
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return protect(L, [&] {
        store::WorklistStatus status = store::WorklistStatus::Scheduled;
        bool keepStatus = true;  // without `status`, an existing item keeps its own
        lua_getfield(L, 1, "status");
        if (!lua_isnil(L, -1)) {
            keepStatus = false;
            std::string s = stringField(L, "worklist.upsert", "status");
            auto st = store::parseWorklistStatus(s);
            if (!st)
                throw LuaError("worklist.upsert: unknown status '" + s +
                               "' (SCHEDULED, IN PROGRESS, COMPLETED, DISCONTINUED or CANCELLED)");
            status = *st;
        }
        lua_pop(L, 1);
        std::string json = jsonEncode(L, 1, false);
        store::WorklistItem item;
        try {
            item = dicom::worklistItemFromKeywords(json, {"id", "status"});
        } catch (const std::invalid_argument& e) {
            throw LuaError(std::string("worklist.upsert: ") + e.what());
        }
        item.status = status;
        item.keepStatus = keepStatus;
        std::int64_t id;
        try {
            id = wl.upsert(item);
        } catch (const std::invalid_argument& e) {
            throw LuaError(std::string("worklist.upsert: ") + e.what());
        }
        lua_pushinteger(L, static_cast<lua_Integer>(id));
        return 1;
    });
}

int setStatusTo(lua_State* L, const char* fn, store::WorklistStatus status) {
    store::WorklistStore& wl = worklistOf(L, fn);
    std::string_view key = checkView(L, 1);
    if (key.empty()) return luaL_error(L, "%s: the AccessionNumber or StudyInstanceUID is empty", fn);
    return protect(L, [&] {
        std::size_t n = wl.setStatus(std::string(key), status);
        lua_pushinteger(L, static_cast<lua_Integer>(n));
        return 1;
    });
}

int completeL(lua_State* L) { return setStatusTo(L, "worklist.complete", store::WorklistStatus::Completed); }
int cancelL(lua_State* L) { return setStatusTo(L, "worklist.cancel", store::WorklistStatus::Cancelled); }

// worklist.set_status(key, status) → count
int setStatusL(lua_State* L) {
    const char* s = luaL_checkstring(L, 2);
    auto st = store::parseWorklistStatus(s);
    if (!st)
        return luaL_error(L, "worklist.set_status: unknown status '%s' (SCHEDULED, IN PROGRESS, COMPLETED, "
                             "DISCONTINUED or CANCELLED)", s);
    lua_settop(L, 1);
    return setStatusTo(L, "worklist.set_status", *st);
}

// worklist.find{...} → array of item tables (keywords + id + status)
int findL(lua_State* L) {
    store::WorklistStore& wl = worklistOf(L, "worklist.find");
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    // Query inside protect; leaves a table of {keyword JSON text, id, status}
    // triples at index 2, decoded below where no C++ frame is alive.
    int r = protect(L, [&] {
        store::WorklistFilter f;
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING) throw LuaError("worklist.find: filter keys must be names");
            std::string key = lua_tostring(L, -2);
            if (key == "include_finished") {
                f.includeFinished = lua_toboolean(L, -1);
            } else if (key == "limit") {
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
                    throw LuaError("worklist.find: limit must be a non-negative integer");
                f.limit = static_cast<std::size_t>(lua_tointeger(L, -1));
            } else {
                std::string v = stringField(L, "worklist.find", key.c_str());
                if (key == "PatientID") f.patientId = v;
                else if (key == "PatientName") f.patientName = v;
                else if (key == "AccessionNumber") f.accessionNumber = v;
                else if (key == "Modality") f.modality = v;
                else if (key == "ScheduledStationAETitle") f.stationAeTitle = v;
                else if (key == "ScheduledProcedureStepStartDate") f.spsStartDate = v;
                else if (key == "ScheduledProcedureStepStartTime") f.spsStartTime = v;
                else if (key == "RequestedProcedureID") f.requestedProcedureId = v;
                else if (key == "StudyInstanceUID") f.studyInstanceUid = v;
                else
                    throw LuaError("worklist.find: cannot filter on '" + key +
                                   "' (PatientID, PatientName, AccessionNumber, Modality, ScheduledStationAETitle, "
                                   "ScheduledProcedureStepStartDate, ScheduledProcedureStepStartTime, "
                                   "RequestedProcedureID, StudyInstanceUID, include_finished, limit)");
            }
            lua_pop(L, 1);
        }
        auto items = wl.find(f);
        lua_createtable(L, static_cast<int>(items.size()), 0);
        lua_Integer i = 0;
        for (const auto& it : items) {
            std::string kw = dicom::dicomJsonToKeywords(it.dataset);
            lua_createtable(L, 3, 0);
            pushView(L, kw);
            lua_rawseti(L, -2, 1);
            lua_pushinteger(L, static_cast<lua_Integer>(it.id));
            lua_rawseti(L, -2, 2);
            lua_pushstring(L, store::toString(it.status));
            lua_rawseti(L, -2, 3);
            lua_rawseti(L, -2, ++i);
        }
        return 1;
    });
    (void)r;
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, 2));
    lua_createtable(L, static_cast<int>(n), 0);  // 3: the result
    for (lua_Integer i = 1; i <= n; ++i) {
        lua_rawgeti(L, 2, i);                     // 4: triple
        lua_rawgeti(L, 4, 1);                     // 5: keyword JSON
        std::size_t len = 0;
        const char* text = lua_tolstring(L, 5, &len);
        jsonDecodePush(L, std::string_view(text, len), "worklist.find");  // 6: item table
        lua_rawgeti(L, 4, 2);
        lua_setfield(L, 6, "id");
        lua_rawgeti(L, 4, 3);
        lua_setfield(L, 6, "status");
        lua_rawseti(L, 3, i);
        lua_settop(L, 3);
    }
    return 1;
}

}  // namespace

void openWorklist(lua_State* L) {
    const luaL_Reg funcs[] = {{"upsert", upsertL},       {"complete", completeL}, {"cancel", cancelL},
                              {"set_status", setStatusL}, {"find", findL},         {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_setglobal(L, "worklist");
}

}  // namespace junction::lua::detail
