// The `hl7` module and the msg / node objects scripts use on HL7 v2 messages.
//
// A msg object (userdata) points at an hl7::Message: the payload's message
// (the reusable object bound for the length of one call) or one it owns
// (hl7.parse, hl7.new, hl7.ack). Segments get identities (ids kept parallel
// to the message's segment list) so that a node — segment/field/repetition/
// component/subcomponent — keeps pointing at the same segment when others are
// inserted or removed; a removed segment's nodes raise a clear error.
#include <cstring>
#include <new>

#include "engine/hl7/split.h"
#include "engine/hl7/ack.h"
#include "engine/lua/lua_internal.h"

namespace junction::lua::detail {
namespace {

using hl7::piece;

constexpr std::uint32_t kMsgTag = 0x4d534731;   // "MSG1"
constexpr std::uint32_t kNodeTag = 0x4e4f4431;  // "NOD1"

const char kMsgMetaKey = 0;
const char kNodeMetaKey = 0;

struct MsgObj {
    std::uint32_t tag = kMsgTag;
    hl7::Message* msg = nullptr;
    std::optional<hl7::Message> owned;
    std::vector<std::uint64_t> ids;  // identity of each segment, parallel to the message
    std::uint64_t nextId = 1;
    std::uint32_t generation = 1;    // bumped on rebinding: older nodes become invalid

    void resetIds() {
        ids.resize(msg ? msg->segmentCount() : 0);
        for (auto& id : ids) id = nextId++;
    }
    // After a path set, which may append segments.
    void syncIds() {
        std::size_t n = msg->segmentCount();
        while (ids.size() < n) ids.push_back(nextId++);
        if (ids.size() > n) ids.resize(n);
    }
    std::optional<std::size_t> find(std::uint64_t id, std::uint32_t& hint) const {
        if (hint < ids.size() && ids[hint] == id) return hint;
        for (std::size_t i = 0; i < ids.size(); ++i)
            if (ids[i] == id) {
                hint = static_cast<std::uint32_t>(i);
                return i;
            }
        return std::nullopt;
    }
};

struct NodeObj {
    std::uint32_t tag = kNodeTag;
    MsgObj* owner = nullptr;
    std::uint32_t generation = 0;
    std::uint32_t hint = 0;
    std::uint64_t segId = 0;
    char seg[4] = {0, 0, 0, 0};
    int field = 0, rep = 0, comp = 0, sub = 0;  // 0 = not given

    enum Kind { Segment, Field, Repetition, Component, Subcomponent };
    Kind kind() const {
        if (field == 0) return Segment;
        if (sub) return Subcomponent;
        if (comp) return Component;
        if (rep) return Repetition;
        return Field;
    }
};

std::uint32_t tagOf(lua_State* L, int idx) {
    if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) < sizeof(std::uint32_t)) return 0;
    std::uint32_t tag;
    std::memcpy(&tag, lua_touserdata(L, idx), sizeof tag);
    return tag;
}

MsgObj* testMsg(lua_State* L, int idx) {
    return tagOf(L, idx) == kMsgTag ? static_cast<MsgObj*>(lua_touserdata(L, idx)) : nullptr;
}
NodeObj* testNode(lua_State* L, int idx) {
    return tagOf(L, idx) == kNodeTag ? static_cast<NodeObj*>(lua_touserdata(L, idx)) : nullptr;
}

MsgObj& checkMsg(lua_State* L, int idx) {
    MsgObj* m = testMsg(L, idx);
    if (!m) luaL_typeerror(L, idx, "HL7 message (use msg:method(...) with a colon)");
    if (!m->msg) luaL_error(L, "the message is only available while its function runs");
    return *m;
}

NodeObj& checkNode(lua_State* L, int idx) {
    NodeObj* n = testNode(L, idx);
    if (!n) luaL_typeerror(L, idx, "HL7 node (use node:method(...) with a colon)");
    return *n;
}

// Segment index of a node, or a Lua error when the node is stale.
std::size_t resolve(lua_State* L, NodeObj& n) {
    if (!n.owner->msg || n.generation != n.owner->generation)
        luaL_error(L, "this %s node belongs to a message that is no longer available (nodes live as long as the "
                      "call that produced them)",
                   n.seg);
    auto idx = n.owner->find(n.segId, n.hint);
    if (!idx) luaL_error(L, "the %s segment of this node was removed from the message", n.seg);
    return *idx;
}

// ------------------------------------------------------------ locating text

int countPieces(std::string_view s, char sep) {
    if (s.empty()) return 0;
    if (!sep) return 1;
    int n = 1;
    for (char c : s)
        if (c == sep) ++n;
    return n;
}

bool isHeaderDelimiterField(const hl7::Message& m, std::size_t seg, int field) {
    return field >= 1 && field <= 2 && m.segmentName(seg) == "MSH";
}

// Raw text of a node inside its segment; `structured` tells whether it still
// holds delimiters of a deeper level (then it is returned raw, not unescaped).
std::string_view locate(const hl7::Message& m, std::size_t seg, int field, int rep, int comp, int sub,
                        bool& structured) {
    structured = false;
    std::string_view f = m.rawField(seg, static_cast<std::size_t>(field));
    if (isHeaderDelimiterField(m, seg, field)) {
        structured = true;  // never unescaped
        return f;
    }
    const hl7::Delimiters& d = m.delimiters();
    if (rep == 0 && comp == 0) {
        for (char c : f)
            if ((c == d.repetition && c) || c == d.component || (c == d.subcomponent && c)) {
                structured = true;
                break;
            }
        return f;
    }
    std::string_view node = piece(f, d.repetition, rep ? rep : 1);
    if (comp == 0) {
        structured = node.find(d.component) != std::string_view::npos ||
                     (d.subcomponent && node.find(d.subcomponent) != std::string_view::npos);
        return node;
    }
    node = piece(node, d.component, comp);
    if (sub == 0) {
        structured = d.subcomponent && node.find(d.subcomponent) != std::string_view::npos;
        return node;
    }
    return piece(node, d.subcomponent, sub);
}

// Push a located value: raw when structured or asked for raw, else unescaped.
void pushLocated(lua_State* L, const hl7::Message& m, std::string_view v, bool structured, bool raw) {
    if (raw || structured || !m.delimiters().escape || v.find(m.delimiters().escape) == std::string_view::npos) {
        pushView(L, v);
        return;
    }
    protect(L, [&] {
        std::string u = m.unescape(v);
        pushView(L, u);
        return 0;
    });
}

int occurrenceOf(const hl7::Message& m, std::size_t idx) {
    std::string_view name = m.segmentName(idx);
    int n = 0;
    for (std::size_t i = 0; i <= idx; ++i)
        if (m.segmentName(i) == name) ++n;
    return n;
}

hl7::Path pathOf(const hl7::Message& m, std::size_t idx, const NodeObj& n) {
    hl7::Path p;
    p.segment.assign(n.seg, 3);
    p.occurrence = occurrenceOf(m, idx);
    p.field = n.field;
    p.repetition = n.rep;
    p.component = n.comp;
    p.subcomponent = n.sub;
    return p;
}

// ------------------------------------------------------------ node creation

void setMeta(lua_State* L, const char* key) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_setmetatable(L, -2);
}

// Push a new node; `ownerIdx` is the msg userdata or a node (whose owner is copied).
NodeObj* pushNode(lua_State* L, int ownerIdx, const NodeObj& proto) {
    ownerIdx = lua_absindex(L, ownerIdx);
    auto* n = static_cast<NodeObj*>(lua_newuserdatauv(L, sizeof(NodeObj), 1));
    new (n) NodeObj(proto);
    setMeta(L, &kNodeMetaKey);
    if (testNode(L, ownerIdx))
        lua_getiuservalue(L, ownerIdx, 1);
    else
        lua_pushvalue(L, ownerIdx);
    lua_setiuservalue(L, -2, 1);
    return n;
}

void pushSegmentNode(lua_State* L, int msgIdx, MsgObj& m, std::size_t idx) {
    NodeObj proto;
    proto.owner = &m;
    proto.generation = m.generation;
    proto.hint = static_cast<std::uint32_t>(idx);
    proto.segId = m.ids[idx];
    std::string_view name = m.msg->segmentName(idx);
    std::memcpy(proto.seg, name.data(), std::min<std::size_t>(3, name.size()));
    pushNode(L, msgIdx, proto);
}

// ------------------------------------------------------------ values

// Lua value at `idx` → encoded (escaped) text for a node of kind `target`
// (a table gives its children joined with the next level's delimiter).
std::string encodeValue(lua_State* L, int idx, const hl7::Message& m, NodeObj::Kind target) {
    const hl7::Delimiters& d = m.delimiters();
    switch (lua_type(L, idx)) {
        case LUA_TNIL: return {};
        case LUA_TSTRING:
        case LUA_TNUMBER: {
            std::size_t n = 0;
            const char* s = lua_tolstring(L, idx, &n);
            return m.escape({s, n});
        }
        case LUA_TTABLE: {
            char sep;
            NodeObj::Kind child;
            switch (target) {
                case NodeObj::Field:
                case NodeObj::Repetition: sep = d.component; child = NodeObj::Component; break;
                case NodeObj::Component: sep = d.subcomponent; child = NodeObj::Subcomponent; break;
                default: throw LuaError("a table value can only be assigned to a field, repetition or component");
            }
            if (!sep) throw LuaError("the message has no delimiter for the next level");
            std::string out;
            lua_Integer len = static_cast<lua_Integer>(lua_rawlen(L, idx));
            for (lua_Integer i = 1; i <= len; ++i) {
                if (i > 1) out += sep;
                lua_rawgeti(L, idx, i);
                std::string part = encodeValue(L, lua_gettop(L), m, child);
                lua_pop(L, 1);
                out += part;
            }
            return out;
        }
        case LUA_TUSERDATA:
            if (NodeObj* n = testNode(L, idx)) {
                if (!n->owner->msg || n->generation != n->owner->generation)
                    throw LuaError("the assigned node belongs to a message that is no longer available");
                auto si = n->owner->find(n->segId, n->hint);
                if (!si) throw LuaError("the assigned node's segment was removed");
                bool structured;
                const hl7::Message& src = *n->owner->msg;
                if (n->field == 0) return src.segmentText(*si);
                std::string_view raw = locate(src, *si, n->field, n->rep, n->comp, n->sub, structured);
                if (&src == &m || src.delimiters().encodingCharacters() == d.encodingCharacters())
                    return std::string(raw);
                return m.escape(src.unescape(raw));
            }
            [[fallthrough]];
        default:
            throw LuaError(std::string("cannot assign a ") + luaL_typename(L, idx) +
                           " to an HL7 node (use a string, number, table, node or nil)");
    }
}

// The child of `n` at position k (1-based) as a node prototype.
NodeObj childOf(lua_State* L, const NodeObj& n, lua_Integer k) {
    if (k < 1 || k > 100000) luaL_error(L, "HL7 index %d out of range (positions start at 1)", static_cast<int>(k));
    NodeObj c = n;
    int i = static_cast<int>(k);
    switch (n.kind()) {
        case NodeObj::Segment: c.field = i; break;
        case NodeObj::Field:
        case NodeObj::Repetition: c.comp = i; break;
        case NodeObj::Component: c.sub = i; break;
        case NodeObj::Subcomponent: luaL_error(L, "a subcomponent has no parts to index"); break;
    }
    return c;
}

void setNodeValue(lua_State* L, NodeObj& target, int valueIdx) {
    std::size_t idx = resolve(L, target);
    if (target.field == 0) luaL_error(L, "cannot assign to a whole segment (assign its fields: seg[3] = ...)");
    hl7::Message& m = *target.owner->msg;
    if (isHeaderDelimiterField(m, idx, target.field)) luaL_error(L, "MSH-1 and MSH-2 cannot be set");
    protect(L, [&] {
        std::string raw = encodeValue(L, valueIdx, m, target.kind());
        m.setRaw(pathOf(m, idx, target), raw);
        target.owner->syncIds();
        return 0;
    });
}

// ------------------------------------------------------------ node methods

void pushNodeValue(lua_State* L, NodeObj& n, bool raw) {
    std::size_t idx = resolve(L, n);
    const hl7::Message& m = *n.owner->msg;
    if (n.field == 0) {
        protect(L, [&] {
            std::string t = m.segmentText(idx);
            pushView(L, t);
            return 0;
        });
        return;
    }
    bool structured;
    std::string_view v = locate(m, idx, n.field, n.rep, n.comp, n.sub, structured);
    pushLocated(L, m, v, structured, raw);
}

int nodeS(lua_State* L) {
    pushNodeValue(L, checkNode(L, 1), false);
    return 1;
}

int nodeRaw(lua_State* L) {
    pushNodeValue(L, checkNode(L, 1), true);
    return 1;
}

std::string_view nodeRawView(lua_State* L, NodeObj& n, bool& structured) {
    std::size_t idx = resolve(L, n);
    structured = true;
    if (n.field == 0) return {};  // callers handle segments separately
    return locate(*n.owner->msg, idx, n.field, n.rep, n.comp, n.sub, structured);
}

int nodeIsNull(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    bool s;
    lua_pushboolean(L, n.field != 0 && nodeRawView(L, n, s) == "\"\"");
    return 1;
}

int nodeIsEmpty(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    bool s;
    if (n.field == 0) {
        std::size_t idx = resolve(L, n);
        const hl7::Message& m = *n.owner->msg;
        bool empty = true;
        for (std::size_t f = 1; f <= m.fieldCount(idx) && empty; ++f)
            if (!m.rawField(idx, f).empty() && !isHeaderDelimiterField(m, idx, static_cast<int>(f))) empty = false;
        lua_pushboolean(L, empty);
        return 1;
    }
    lua_pushboolean(L, nodeRawView(L, n, s).empty());
    return 1;
}

int nodeName(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    lua_pushstring(L, n.seg);
    return 1;
}

int nodePath(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    std::size_t idx = resolve(L, n);
    return protect(L, [&] {
        std::string p = pathOf(*n.owner->msg, idx, n).toString();
        pushView(L, p);
        return 1;
    });
}

int nodeRep(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    lua_Integer r = luaL_checkinteger(L, 2);
    if (n.kind() != NodeObj::Field) return luaL_error(L, "rep(n) is a method of field nodes (seg[5]:rep(2))");
    if (r < 1 || r > 100000) return luaL_error(L, "repetition %d out of range (starts at 1)", static_cast<int>(r));
    NodeObj c = n;
    c.rep = static_cast<int>(r);
    pushNode(L, 1, c);
    return 1;
}

int nodeReps(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    if (n.kind() != NodeObj::Field) return luaL_error(L, "reps() is a method of field nodes (seg[3]:reps())");
    std::size_t idx = resolve(L, n);
    const hl7::Message& m = *n.owner->msg;
    std::string_view f = m.rawField(idx, static_cast<std::size_t>(n.field));
    int count = isHeaderDelimiterField(m, idx, n.field) ? 1 : countPieces(f, m.delimiters().repetition);
    lua_createtable(L, count, 0);
    for (int r = 1; r <= count; ++r) {
        NodeObj c = n;
        c.rep = r;
        pushNode(L, 1, c);
        lua_rawseti(L, -2, r);
    }
    return 1;
}

int nodeIndex(lua_State* L) {
    NodeObj& n = *static_cast<NodeObj*>(lua_touserdata(L, 1));
    int isnum = 0;
    lua_Integer k = lua_tointegerx(L, 2, &isnum);
    if (isnum) {
        NodeObj c = childOf(L, n, k);
        pushNode(L, 1, c);
        return 1;
    }
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
        return luaL_error(L, "HL7 nodes have no member '%s' (index parts by number: seg[5][1]; methods: S, raw, rep, "
                             "reps, name, path, is_null, is_empty)",
                          lua_tostring(L, 2));
    }
    return luaL_error(L, "HL7 nodes are indexed by number (seg[5][1]), not by %s", luaL_typename(L, 2));
}

int nodeNewIndex(lua_State* L) {
    NodeObj& n = *static_cast<NodeObj*>(lua_touserdata(L, 1));
    int isnum = 0;
    lua_Integer k = lua_tointegerx(L, 2, &isnum);
    if (!isnum) return luaL_error(L, "HL7 node parts are assigned by number (seg[5][1] = \"DOE\")");
    NodeObj c = childOf(L, n, k);
    setNodeValue(L, c, 3);
    return 0;
}

int nodeToString(lua_State* L) {
    pushNodeValue(L, checkNode(L, 1), false);
    return 1;
}

int nodeConcat(lua_State* L) {
    for (int i = 1; i <= 2; ++i) {
        if (NodeObj* n = testNode(L, i)) {
            pushNodeValue(L, *n, false);
        } else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER) {
            lua_pushvalue(L, i);
            lua_tostring(L, -1);
        } else {
            return luaL_error(L, "attempt to concatenate a %s value with an HL7 node", luaL_typename(L, i));
        }
    }
    lua_concat(L, 2);
    return 1;
}

int nodeLen(lua_State* L) {
    NodeObj& n = checkNode(L, 1);
    std::size_t idx = resolve(L, n);
    const hl7::Message& m = *n.owner->msg;
    const hl7::Delimiters& d = m.delimiters();
    if (n.field == 0) {
        lua_pushinteger(L, static_cast<lua_Integer>(m.fieldCount(idx)));
        return 1;
    }
    if (isHeaderDelimiterField(m, idx, n.field)) {
        lua_pushinteger(L, 1);
        return 1;
    }
    bool s;
    std::string_view v;
    char sep = 0;
    switch (n.kind()) {
        case NodeObj::Field:
            v = piece(m.rawField(idx, static_cast<std::size_t>(n.field)), d.repetition, 1);
            sep = d.component;
            break;
        case NodeObj::Repetition: v = locate(m, idx, n.field, n.rep, 0, 0, s); sep = d.component; break;
        case NodeObj::Component: v = locate(m, idx, n.field, n.rep, n.comp, 0, s); sep = d.subcomponent; break;
        default: lua_pushinteger(L, 0); return 1;
    }
    lua_pushinteger(L, countPieces(v, sep));
    return 1;
}

// ------------------------------------------------------------ msg methods

std::optional<hl7::Path> checkPath(lua_State* L, int idx, char* err, std::size_t errSize) {
    std::string_view text = checkView(L, idx);
    std::string e;
    auto p = hl7::Path::parse(text, &e);
    if (!p) std::snprintf(err, errSize, "%s", e.c_str());
    return p;
}

int msgGetImpl(lua_State* L, bool raw) {
    MsgObj& mo = checkMsg(L, 1);
    checkView(L, 2);
    return protect(L, [&] {
        char err[300];
        auto p = checkPath(L, 2, err, sizeof err);
        if (!p) throw LuaError(err);
        const hl7::Message& m = *mo.msg;
        auto seg = m.findSegment(p->segment, p->occurrence);
        if (!seg) {
            lua_pushliteral(L, "");
            return 1;
        }
        if (p->field == 0) {
            std::string t = m.segmentText(*seg);
            pushView(L, t);
            return 1;
        }
        bool structured;
        std::string_view v = locate(m, *seg, p->field, p->repetition, p->component, p->subcomponent, structured);
        if (raw || structured || !m.delimiters().escape || v.find(m.delimiters().escape) == std::string_view::npos) {
            pushView(L, v);
        } else {
            std::string u = m.unescape(v);
            pushView(L, u);
        }
        return 1;
    });
}

int msgGet(lua_State* L) { return msgGetImpl(L, false); }
int msgGetRaw(lua_State* L) { return msgGetImpl(L, true); }

int msgSetImpl(lua_State* L, bool raw) {
    MsgObj& mo = checkMsg(L, 1);
    checkView(L, 2);
    int t = lua_type(L, 3);
    if (raw && t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TNIL)
        return luaL_typeerror(L, 3, "string, number or nil");
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TNIL && !testNode(L, 3) && t != LUA_TTABLE)
        return luaL_typeerror(L, 3, "string, number, table, node or nil");
    return protect(L, [&] {
        char err[300];
        auto p = checkPath(L, 2, err, sizeof err);
        if (!p) throw LuaError(err);
        hl7::Message& m = *mo.msg;
        if (raw) {
            std::size_t n = 0;
            const char* s = lua_type(L, 3) == LUA_TNIL ? "" : lua_tolstring(L, 3, &n);
            m.setRaw(*p, std::string_view(s, n));
        } else {
            NodeObj::Kind kind = p->subcomponent ? NodeObj::Subcomponent
                                 : p->component  ? NodeObj::Component
                                 : p->repetition ? NodeObj::Repetition
                                 : p->field      ? NodeObj::Field
                                                 : NodeObj::Segment;
            if (kind == NodeObj::Segment) throw LuaError("msg:set needs a field path (use msg:setRaw for a segment)");
            std::string v = encodeValue(L, 3, m, kind);
            m.setRaw(*p, v);
        }
        mo.syncIds();
        return 0;
    });
}

int msgSet(lua_State* L) { return msgSetImpl(L, false); }
int msgSetRaw(lua_State* L) { return msgSetImpl(L, true); }

int msgSegments(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    std::string_view name;
    bool all = lua_isnoneornil(L, 2);
    if (!all) name = checkView(L, 2);
    const hl7::Message& m = *mo.msg;
    int count = 0;
    for (std::size_t i = 0; i < m.segmentCount(); ++i)
        if (all || m.segmentName(i) == name) ++count;
    lua_createtable(L, count, 0);
    int k = 0;
    for (std::size_t i = 0; i < m.segmentCount(); ++i) {
        if (!all && m.segmentName(i) != name) continue;
        pushSegmentNode(L, 1, mo, i);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

// Fields from the Lua arguments first..top (escaped; tables become components).
std::vector<std::string> fieldArgs(lua_State* L, int first, const hl7::Message& m) {
    std::vector<std::string> fields;
    int top = lua_gettop(L);
    for (int i = first; i <= top; ++i) fields.push_back(encodeValue(L, i, m, NodeObj::Field));
    return fields;
}

int msgAdd(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    checkView(L, 2);
    std::size_t idx = 0;
    protect(L, [&] {
        std::string name(checkView(L, 2));
        auto fields = fieldArgs(L, 3, *mo.msg);
        idx = mo.msg->appendSegment(name, fields);
        mo.ids.insert(mo.ids.begin() + static_cast<std::ptrdiff_t>(idx), mo.nextId++);
        return 0;
    });
    pushSegmentNode(L, 1, mo, idx);
    return 1;
}

int msgInsert(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    NodeObj* after = testNode(L, 2);
    if (!after || after->field != 0) return luaL_typeerror(L, 2, "segment node (insert after it)");
    if (after->owner != &mo) return luaL_error(L, "msg:insert: the segment node belongs to another message");
    std::size_t at = resolve(L, *after) + 1;
    checkView(L, 3);
    std::size_t idx = 0;
    protect(L, [&] {
        std::string name(checkView(L, 3));
        auto fields = fieldArgs(L, 4, *mo.msg);
        idx = mo.msg->insertSegment(at, name, fields);
        mo.ids.insert(mo.ids.begin() + static_cast<std::ptrdiff_t>(idx), mo.nextId++);
        return 0;
    });
    pushSegmentNode(L, 1, mo, idx);
    return 1;
}

int msgRemove(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    NodeObj* seg = testNode(L, 2);
    if (!seg || seg->field != 0) return luaL_typeerror(L, 2, "segment node");
    if (seg->owner != &mo) return luaL_error(L, "msg:remove: the segment node belongs to another message");
    std::size_t idx = resolve(L, *seg);
    protect(L, [&] {
        mo.msg->removeSegment(idx);
        mo.ids.erase(mo.ids.begin() + static_cast<std::ptrdiff_t>(idx));
        return 0;
    });
    return 0;
}

int msgType(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    return protect(L, [&] {
        std::string t = mo.msg->messageType();
        pushView(L, t);
        return 1;
    });
}

int msgControlId(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    return protect(L, [&] {
        std::string t = mo.msg->controlId();
        pushView(L, t);
        return 1;
    });
}

int msgToString(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    return protect(L, [&] {
        std::string t = mo.msg->serialize();
        pushView(L, t);
        return 1;
    });
}

bool isSegmentName(std::string_view k) {
    if (k.size() != 3 || k[0] < 'A' || k[0] > 'Z') return false;
    for (char c : k.substr(1))
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    return true;
}

int msgIndex(lua_State* L) {
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "HL7 messages are indexed by segment name (msg.PID) or methods (msg:get(...))");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    std::string_view k = checkView(L, 2);
    if (!isSegmentName(k))
        return luaL_error(L, "HL7 messages have no member '%s' (segments are msg.PID; methods: get, set, getRaw, "
                             "setRaw, segments, add, insert, remove, type, control_id)",
                          lua_tostring(L, 2));
    MsgObj& mo = checkMsg(L, 1);
    const hl7::Message& m = *mo.msg;
    for (std::size_t i = 0; i < m.segmentCount(); ++i) {
        if (m.segmentName(i) == k) {
            pushSegmentNode(L, 1, mo, i);
            return 1;
        }
    }
    lua_pushnil(L);
    return 1;
}

int msgNewIndex(lua_State* L) {
    return luaL_error(L, "cannot assign to msg.%s: assign fields (msg.PID[5][1] = \"DOE\"), or use msg:add / "
                         "msg:set",
                      lua_tostring(L, 2) ? lua_tostring(L, 2) : "?");
}

int msgGc(lua_State* L) {
    if (MsgObj* m = testMsg(L, 1)) m->~MsgObj();
    return 0;
}

// A new msg object owning `m`.
void pushOwnedMessage(lua_State* L, hl7::Message&& m) {
    auto* mo = static_cast<MsgObj*>(lua_newuserdatauv(L, sizeof(MsgObj), 0));
    new (mo) MsgObj();
    setMeta(L, &kMsgMetaKey);
    mo->owned.emplace(std::move(m));
    mo->msg = &*mo->owned;
    mo->resetIds();
}

// ------------------------------------------------------------ hl7 module

int hl7Parse(lua_State* L) {
    std::string_view text = checkView(L, 1);
    char err[600];
    err[0] = 0;
    protect(L, [&] {
        auto r = hl7::Message::parse(text);
        if (!r) {
            std::snprintf(err, sizeof err, "hl7.parse: %s", r.error.describe().c_str());
            return 0;
        }
        pushOwnedMessage(L, std::move(*r.message));
        return 0;
    });
    if (err[0]) return luaL_error(L, "%s", err);
    return 1;
}

int hl7New(lua_State* L) {
    std::string_view type = checkView(L, 1);
    std::size_t vn = 0;
    const char* v = luaL_optlstring(L, 2, "2.5.1", &vn);
    return protect(L, [&] {
        pushOwnedMessage(L, hl7::Message::create(type, std::string_view(v, vn)));
        return 1;
    });
}

int hl7Ack(lua_State* L) {
    MsgObj& mo = checkMsg(L, 1);
    std::string_view code = luaL_optlstring(L, 2, "AA", nullptr);
    std::size_t tn = 0;
    const char* text = luaL_optlstring(L, 3, "", &tn);
    auto c = hl7::parseAckCode(code);
    if (!c) return luaL_error(L, "hl7.ack: unknown code '%s' (AA, AE, AR, CA, CE, CR)", lua_tostring(L, 2));
    return protect(L, [&] {
        pushOwnedMessage(L, hl7::makeAck(*mo.msg, *c, std::string_view(text, tn)));
        return 1;
    });
}

int hl7Escape(lua_State* L) {
    std::string_view s = checkView(L, 1);
    return protect(L, [&] {
        std::string e = hl7::escapeValue(s, hl7::Delimiters{});
        pushView(L, e);
        return 1;
    });
}

int hl7Unescape(lua_State* L) {
    std::string_view s = checkView(L, 1);
    return protect(L, [&] {
        std::string e = hl7::unescapeValue(s, hl7::Delimiters{});
        pushView(L, e);
        return 1;
    });
}

}  // namespace

// ------------------------------------------------------------ glue

void* newBoundMessage(lua_State* L, int* ref) {
    auto* mo = static_cast<MsgObj*>(lua_newuserdatauv(L, sizeof(MsgObj), 0));
    new (mo) MsgObj();
    setMeta(L, &kMsgMetaKey);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return mo;
}

void bindMessage(void* obj, hl7::Message* m) {
    auto* mo = static_cast<MsgObj*>(obj);
    mo->msg = m;
    ++mo->generation;
    mo->resetIds();
}

hl7::Message* toMessage(lua_State* L, int idx) {
    MsgObj* m = testMsg(L, idx);
    return m ? m->msg : nullptr;
}

bool isNode(lua_State* L, int idx) { return testNode(L, idx) != nullptr; }

void openHl7(lua_State* L) {
    // node metatable: methods table as upvalue of __index
    lua_newtable(L);  // node meta
    lua_newtable(L);  // node methods
    const luaL_Reg nodeMethods[] = {{"S", nodeS},           {"raw", nodeRaw},       {"is_null", nodeIsNull},
                                    {"is_empty", nodeIsEmpty}, {"name", nodeName},   {"path", nodePath},
                                    {"rep", nodeRep},       {"reps", nodeReps},     {nullptr, nullptr}};
    luaL_setfuncs(L, nodeMethods, 0);
    lua_pushcclosure(L, nodeIndex, 1);
    lua_setfield(L, -2, "__index");
    const luaL_Reg nodeMeta[] = {{"__newindex", nodeNewIndex}, {"__tostring", nodeToString},
                                 {"__concat", nodeConcat},     {"__len", nodeLen},
                                 {nullptr, nullptr}};
    luaL_setfuncs(L, nodeMeta, 0);
    lua_pushliteral(L, "hl7.node");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kNodeMetaKey);

    lua_newtable(L);  // msg meta
    lua_newtable(L);  // msg methods
    const luaL_Reg msgMethods[] = {{"get", msgGet},
                                   {"set", msgSet},
                                   {"getRaw", msgGetRaw},
                                   {"setRaw", msgSetRaw},
                                   {"segments", msgSegments},
                                   {"add", msgAdd},
                                   {"insert", msgInsert},
                                   {"remove", msgRemove},
                                   {"type", msgType},
                                   {"control_id", msgControlId},
                                   {nullptr, nullptr}};
    luaL_setfuncs(L, msgMethods, 0);
    lua_pushcclosure(L, msgIndex, 1);
    lua_setfield(L, -2, "__index");
    const luaL_Reg msgMeta[] = {{"__newindex", msgNewIndex}, {"__tostring", msgToString}, {"__gc", msgGc},
                                {nullptr, nullptr}};
    luaL_setfuncs(L, msgMeta, 0);
    lua_pushliteral(L, "hl7.message");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kMsgMetaKey);

    const luaL_Reg funcs[] = {{"parse", hl7Parse},   {"new", hl7New},           {"ack", hl7Ack},
                              {"escape", hl7Escape}, {"unescape", hl7Unescape}, {nullptr, nullptr}};
    luaL_newlib(L, funcs);
    lua_setglobal(L, "hl7");
}

}  // namespace junction::lua::detail
