// string.find, string.match, string.gmatch and string.gsub with a bound.
//
// Lua's own pattern matcher backtracks without limit inside one C call, where
// neither the instruction budget nor the time limit of a script can stop it:
// ("a*"):rep(10) .. "b" against 40 'a's runs for minutes. These functions
// replace it. They count their matching steps, fail the call with "pattern too
// complex" past Limits::patternSteps, and check the time limit and
// interruption every few thousand steps (checkLimits). Plain searches take
// linear time.
//
// Results and error messages are those of Lua 5.4.4 (the version Debian
// bookworm ships; tests/lua/pattern_test.cpp compares both on several hundred
// cases). The matching algorithm is Lua's (lstrlib.c), under this notice:
//
// Copyright (C) 1994-2022 Lua.org, PUC-Rio.
//
// Permission is hereby granted, free of charge, to any person obtaining
// a copy of this software and associated documentation files (the
// "Software"), to deal in the Software without restriction, including
// without limitation the rights to use, copy, modify, merge, publish,
// distribute, sublicense, and/or sell copies of the Software, and to
// permit persons to whom the Software is furnished to do so, subject to
// the following conditions:
//
// The above copyright notice and this permission notice shall be
// included in all copies or substantial portions of the Software.
//
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
// EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
// MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
// IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
// CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
// TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
// SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
//
// Every frame here holds plain data only: a Lua error (a longjmp) may leave
// any of them.
#include <ctype.h>  // glibc's tables (__ctype_b_loc)

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "engine/lua/lua_internal.h"

namespace junction::lua::detail {
namespace {

constexpr int kMaxCaptures = 32;   // LUA_MAXCAPTURES
constexpr int kMaxDepth = 200;     // MAXCCALLS: nesting of match() ("pattern too complex")
constexpr std::ptrdiff_t kCapUnfinished = -1;
constexpr std::ptrdiff_t kCapPosition = -2;
constexpr char kEsc = '%';
constexpr std::uint64_t kCheckEvery = 1u << 14;  // steps between checks of the time limit
constexpr std::uint64_t kNoStepLimit = ~std::uint64_t(0) >> 1;

inline int uchar(char c) { return static_cast<unsigned char>(c); }

struct Capture {
    const char* init;
    std::ptrdiff_t len;  // or kCapUnfinished / kCapPosition
};

struct MatchState {
    // The C library's character tables for the current locale: what Lua's
    // matcher reads through the <ctype.h> macros (the C++ functions are calls).
    const unsigned short* ctype;
    const std::int32_t* lower;
    const char* srcInit;  // the subject (a Lua string: src[len] is '\0')
    const char* srcEnd;
    const char* pEnd;     // end of the pattern (also '\0')
    lua_State* L;
    int depth;            // match() nesting left
    int level;            // captures, finished or not
    std::uint64_t steps;
    std::uint64_t nextCheck;
    std::uint64_t budget;
    Capture capture[kMaxCaptures];
};

// ------------------------------------------------------------ step budget

void startBudget(MatchState* ms) {
    std::uint64_t steps = runtime(ms->L).limits.patternSteps;
    ms->budget = steps == 0 ? kNoStepLimit : steps;
    ms->steps = 0;
    ms->nextCheck = std::min(kCheckEvery, ms->budget + 1);
}

[[gnu::noinline]] void checkpoint(MatchState* ms) {
    if (ms->steps > ms->budget)
        luaL_error(ms->L, "pattern too complex (more than %I matching steps)", static_cast<lua_Integer>(ms->budget));
    checkLimits(ms->L);
    ms->nextCheck = std::min(ms->steps + kCheckEvery, ms->budget + 1);
}

inline void tick(MatchState* ms, std::uint64_t n) {
    ms->steps += n;
    if (ms->steps >= ms->nextCheck) checkpoint(ms);
}

// What testing one character against the class p..ep costs: sets ("[...]")
// are scanned, so long ones cost more.
inline std::uint64_t classCost(const char* p, const char* ep) { return 1 + static_cast<std::uint64_t>(ep - p) / 8; }

// ------------------------------------------------------------ classes

const char* classEnd(MatchState* ms, const char* p) {
    char c = *p++;
    if (c == kEsc) {
        if (p == ms->pEnd) luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^') p++;
        do {  // up to the closing ']' ("[]...]" and "[%]]" hold a ']')
            if (p == ms->pEnd) luaL_error(ms->L, "malformed pattern (missing ']')");
            char d = *p++;
            if (d == kEsc && p < ms->pEnd) p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

void loadCharTables(MatchState* ms) {
    ms->ctype = *__ctype_b_loc();
    ms->lower = *__ctype_tolower_loc();
}

// %a, %d, ... (upper case: the complement); any other letter is itself.
bool matchClass(const MatchState* ms, int c, int cl) {
    unsigned short bit;
    switch (ms->lower[cl]) {
        case 'a': bit = _ISalpha; break;
        case 'c': bit = _IScntrl; break;
        case 'd': bit = _ISdigit; break;
        case 'g': bit = _ISgraph; break;
        case 'l': bit = _ISlower; break;
        case 'p': bit = _ISpunct; break;
        case 's': bit = _ISspace; break;
        case 'u': bit = _ISupper; break;
        case 'w': bit = _ISalnum; break;
        case 'x': bit = _ISxdigit; break;
        case 'z': {  // deprecated, still accepted by Lua 5.4
            bool res = c == 0;
            return (ms->ctype[cl] & _ISlower) ? res : !res;
        }
        default: return cl == c;
    }
    bool res = (ms->ctype[c] & bit) != 0;
    return (ms->ctype[cl] & _ISlower) ? res : !res;
}

// A set "[...]": p at '[', ec at its ']'.
[[gnu::always_inline]] inline bool matchSet(const MatchState* ms, int c, const char* p, const char* ec) {
    bool found = true;
    if (p[1] == '^') {
        found = false;
        p++;
    }
    while (++p < ec) {
        if (*p == kEsc) {
            p++;
            if (matchClass(ms, c, uchar(*p))) return found;
        } else if (p[1] == '-' && p + 2 < ec) {
            p += 2;
            if (uchar(p[-2]) <= c && c <= uchar(*p)) return found;
        } else if (uchar(*p) == c) {
            return found;
        }
    }
    return !found;
}

[[gnu::always_inline]] inline bool singleMatch(const MatchState* ms, const char* s, const char* p, const char* ep) {
    if (s >= ms->srcEnd) return false;
    int c = uchar(*s);
    switch (*p) {
        case '.': return true;
        case kEsc: return matchClass(ms, c, uchar(p[1]));
        case '[': return matchSet(ms, c, p, ep - 1);
        default: return uchar(*p) == c;
    }
}

// ------------------------------------------------------------ matching

const char* match(MatchState* ms, const char* s, const char* p);

// %bxy at p (p points at x).
const char* matchBalance(MatchState* ms, const char* s, const char* p) {
    if (p >= ms->pEnd - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (*s != *p) return nullptr;
    const char open = p[0], close = p[1];
    int depth = 1;
    const char* counted = s;
    while (++s < ms->srcEnd) {
        if (s - counted == 1024) {
            tick(ms, 1024);
            counted = s;
        }
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return nullptr;
}

// Longest run of the class p..ep, then backing off one at a time.
const char* maxExpand(MatchState* ms, const char* s, const char* p, const char* ep) {
    const std::uint64_t cost = classCost(p, ep);
    std::ptrdiff_t i = 0;
    for (;;) {  // counted in chunks: the scan is the matcher's innermost loop
        const std::ptrdiff_t from = i, to = i + 1024;
        while (i < to && singleMatch(ms, s + i, p, ep)) i++;
        tick(ms, cost * static_cast<std::uint64_t>(i - from));
        if (i < to) break;
    }
    for (; i >= 0; i--) {
        const char* res = match(ms, s + i, ep + 1);
        if (res) return res;
    }
    return nullptr;
}

// Shortest run of the class p..ep that lets the rest match.
const char* minExpand(MatchState* ms, const char* s, const char* p, const char* ep) {
    for (;;) {
        const char* res = match(ms, s, ep + 1);
        if (res) return res;
        if (!singleMatch(ms, s, p, ep)) return nullptr;
        s++;
    }
}

const char* startCapture(MatchState* ms, const char* s, const char* p, std::ptrdiff_t what) {
    int level = ms->level;
    if (level >= kMaxCaptures) luaL_error(ms->L, "too many captures");
    ms->capture[level].init = s;
    ms->capture[level].len = what;
    ms->level = level + 1;
    const char* res = match(ms, s, p);
    if (!res) ms->level--;
    return res;
}

int captureToClose(MatchState* ms) {
    for (int level = ms->level - 1; level >= 0; level--)
        if (ms->capture[level].len == kCapUnfinished) return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

const char* endCapture(MatchState* ms, const char* s, const char* p) {
    int l = captureToClose(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char* res = match(ms, s, p);
    if (!res) ms->capture[l].len = kCapUnfinished;
    return res;
}

int checkCapture(MatchState* ms, int l) {
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == kCapUnfinished)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

// %1..%9 in a pattern: the text of that capture again.
const char* matchBackReference(MatchState* ms, const char* s, int l) {
    l = checkCapture(ms, l);
    std::size_t len = static_cast<std::size_t>(ms->capture[l].len);  // a position capture never matches
    if (static_cast<std::size_t>(ms->srcEnd - s) < len) return nullptr;
    tick(ms, 1 + len / 16);
    return std::memcmp(ms->capture[l].init, s, len) == 0 ? s + len : nullptr;
}

// The end of the match of pattern p..pEnd at s, or nullptr.
const char* match(MatchState* ms, const char* s, const char* p) {
    if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
    tick(ms, 1);
    for (;;) {  // each pass consumes one pattern item; nested items recurse
        if (p == ms->pEnd) break;
        bool single = false;  // p starts a single-character class
        switch (*p) {
            case '(':
                s = p[1] == ')' ? startCapture(ms, s, p + 2, kCapPosition) : startCapture(ms, s, p + 1, kCapUnfinished);
                break;
            case ')': s = endCapture(ms, s, p + 1); break;
            case '$':
                if (p + 1 != ms->pEnd) {
                    single = true;  // a '$' that does not end the pattern is a plain character
                    break;
                }
                s = s == ms->srcEnd ? s : nullptr;
                break;
            case kEsc:
                switch (p[1]) {
                    case 'b':
                        s = matchBalance(ms, s, p + 2);
                        if (s) {
                            p += 4;
                            continue;
                        }
                        break;
                    case 'f': {
                        p += 2;
                        if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                        const char* ep = classEnd(ms, p);
                        tick(ms, 2 * classCost(p, ep));
                        char previous = s == ms->srcInit ? '\0' : s[-1];
                        if (!matchSet(ms, uchar(previous), p, ep - 1) && matchSet(ms, uchar(*s), p, ep - 1)) {
                            p = ep;
                            continue;
                        }
                        s = nullptr;
                        break;
                    }
                    case '0': case '1': case '2': case '3': case '4':
                    case '5': case '6': case '7': case '8': case '9':
                        s = matchBackReference(ms, s, uchar(p[1]));
                        if (s) {
                            p += 2;
                            continue;
                        }
                        break;
                    default: single = true; break;
                }
                break;
            default: single = true; break;
        }
        if (!single) break;

        // A single-character class and its optional repetition suffix.
        const char* ep = classEnd(ms, p);
        tick(ms, classCost(p, ep));
        if (!singleMatch(ms, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {  // zero repetitions are fine
                p = ep + 1;
                continue;
            }
            s = nullptr;
            break;
        }
        if (*ep == '?') {
            const char* res = match(ms, s + 1, ep + 1);
            if (res) {
                s = res;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (*ep == '+') {
            s = maxExpand(ms, s + 1, p, ep);
            break;
        }
        if (*ep == '*') {
            s = maxExpand(ms, s, p, ep);
            break;
        }
        if (*ep == '-') {
            s = minExpand(ms, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    ms->depth++;
    return s;
}

// ------------------------------------------------------------ captures

// Capture i (the whole match s..e when the pattern has none and i is 0): its
// length with *cap at its text, or kCapPosition with the position pushed.
std::ptrdiff_t getCapture(MatchState* ms, int i, const char* s, const char* e, const char** cap) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return e - s;
    }
    std::ptrdiff_t len = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (len == kCapUnfinished) luaL_error(ms->L, "unfinished capture");
    if (len == kCapPosition) lua_pushinteger(ms->L, static_cast<lua_Integer>(ms->capture[i].init - ms->srcInit) + 1);
    return len;
}

void pushCapture(MatchState* ms, int i, const char* s, const char* e) {
    const char* cap = nullptr;
    std::ptrdiff_t len = getCapture(ms, i, s, e, &cap);
    if (len != kCapPosition) lua_pushlstring(ms->L, cap, static_cast<std::size_t>(len));
}

// The captures, or the whole match s..e when there are none (s == nullptr: none).
int pushCaptures(MatchState* ms, const char* s, const char* e) {
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) pushCapture(ms, i, s, e);
    return n;
}

// ------------------------------------------------------------ the functions

// A start position: negative counts from the end; clipped to [1, inf).
std::size_t startPosition(lua_Integer pos, std::size_t len) {
    if (pos > 0) return static_cast<std::size_t>(pos);
    if (pos == 0) return 1;
    if (pos < -static_cast<lua_Integer>(len)) return 1;
    return len + static_cast<std::size_t>(pos) + 1;
}

bool hasSpecials(const char* p, std::size_t len) {
    for (std::size_t i = 0; i < len; i++) {
        switch (p[i]) {
            case '^': case '$': case '*': case '+': case '?':
            case '.': case '(': case '[': case '%': case '-':
                return true;
            default: break;
        }
    }
    return false;
}

// The first occurrence of p in s, in linear time: a short needle is compared
// at each candidate (at most 32 bytes per position), a longer one is left to
// memmem (two-way; Lua's own search is quadratic).
const char* plainFind(const char* s, std::size_t ls, const char* p, std::size_t lp) {
    if (lp == 0) return s;
    if (lp > ls) return nullptr;
    if (lp > 32) return static_cast<const char*>(::memmem(s, ls, p, lp));
    const char* const last = s + (ls - lp);  // the last possible start
    while (s <= last) {
        const char* at = static_cast<const char*>(std::memchr(s, *p, static_cast<std::size_t>(last - s) + 1));
        if (!at) return nullptr;
        if (std::memcmp(at + 1, p + 1, lp - 1) == 0) return at;
        s = at + 1;
    }
    return nullptr;
}

void prepare(MatchState* ms, lua_State* L, const char* s, std::size_t ls, const char* p, std::size_t lp) {
    ms->L = L;
    ms->srcInit = s;
    ms->srcEnd = s + ls;
    ms->pEnd = p + lp;
    ms->depth = kMaxDepth;
    ms->level = 0;
    loadCharTables(ms);
    startBudget(ms);
}

void restart(MatchState* ms) {
    ms->level = 0;
    ms->depth = kMaxDepth;
}

int findAux(lua_State* L, bool find) {
    std::size_t ls = 0, lp = 0;
    const char* s = luaL_checklstring(L, 1, &ls);
    const char* p = luaL_checklstring(L, 2, &lp);
    std::size_t init = startPosition(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {  // starts after the end
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !hasSpecials(p, lp))) {
        const char* at = plainFind(s + init, ls - init, p, lp);
        if (at) {
            lua_pushinteger(L, static_cast<lua_Integer>(at - s) + 1);
            lua_pushinteger(L, static_cast<lua_Integer>(at - s) + static_cast<lua_Integer>(lp));
            return 2;
        }
    } else {
        MatchState ms;
        const char* s1 = s + init;
        bool anchor = *p == '^';
        if (anchor) {
            p++;
            lp--;
        }
        prepare(&ms, L, s, ls, p, lp);
        do {
            restart(&ms);
            if (const char* e = match(&ms, s1, p)) {
                if (find) {
                    lua_pushinteger(L, static_cast<lua_Integer>(s1 - s) + 1);
                    lua_pushinteger(L, static_cast<lua_Integer>(e - s));
                    return pushCaptures(&ms, nullptr, nullptr) + 2;
                }
                return pushCaptures(&ms, s1, e);
            }
        } while (s1++ < ms.srcEnd && !anchor);
    }
    luaL_pushfail(L);
    return 1;
}

int strFind(lua_State* L) { return findAux(L, true); }
int strMatch(lua_State* L) { return findAux(L, false); }

struct GMatchState {
    const char* src;        // where the next search starts
    const char* p;
    const char* lastMatch;  // end of the last match (an empty match there is skipped)
    MatchState ms;
};

int gmatchNext(lua_State* L) {
    auto* gm = static_cast<GMatchState*>(lua_touserdata(L, lua_upvalueindex(3)));
    gm->ms.L = L;
    loadCharTables(&gm->ms);
    startBudget(&gm->ms);
    for (const char* src = gm->src; src <= gm->ms.srcEnd; src++) {
        restart(&gm->ms);
        const char* e = match(&gm->ms, src, gm->p);
        if (e && e != gm->lastMatch) {
            gm->src = gm->lastMatch = e;
            return pushCaptures(&gm->ms, src, e);
        }
    }
    return 0;
}

int strGmatch(lua_State* L) {
    std::size_t ls = 0, lp = 0;
    const char* s = luaL_checklstring(L, 1, &ls);
    const char* p = luaL_checklstring(L, 2, &lp);
    std::size_t init = startPosition(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);  // the closure keeps both strings alive
    auto* gm = static_cast<GMatchState*>(lua_newuserdatauv(L, sizeof(GMatchState), 0));
    if (init > ls) init = ls + 1;  // past the end: nothing to find
    prepare(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastMatch = nullptr;
    lua_pushcclosure(L, gmatchNext, 3);
    return 1;
}

// A replacement string: "%0".."%9" are captures, "%%" is '%'.
void addReplacementString(MatchState* ms, luaL_Buffer* b, const char* s, const char* e) {
    lua_State* L = ms->L;
    std::size_t l = 0;
    const char* news = lua_tolstring(L, 3, &l);
    const char* p;
    while ((p = static_cast<const char*>(std::memchr(news, kEsc, l))) != nullptr) {
        luaL_addlstring(b, news, static_cast<std::size_t>(p - news));
        p++;  // the character after '%' ('\0' at the end of the string)
        if (*p == kEsc) {
            luaL_addchar(b, *p);
        } else if (*p == '0') {
            luaL_addlstring(b, s, static_cast<std::size_t>(e - s));
        } else if (ms->ctype[uchar(*p)] & _ISdigit) {
            const char* cap = nullptr;
            std::ptrdiff_t len = getCapture(ms, *p - '1', s, e, &cap);
            if (len == kCapPosition) luaL_addvalue(b);
            else luaL_addlstring(b, cap, static_cast<std::size_t>(len));
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", kEsc);
        }
        l -= static_cast<std::size_t>(p + 1 - news);
        news = p + 1;
    }
    luaL_addlstring(b, news, l);
}

// Adds the replacement of the match s..e; false when the text is kept (a
// function or table giving nil or false).
bool addReplacement(MatchState* ms, luaL_Buffer* b, const char* s, const char* e, int tr) {
    lua_State* L = ms->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = pushCaptures(ms, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        pushCapture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        addReplacementString(ms, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, static_cast<std::size_t>(e - s));
        return false;
    }
    if (!lua_isstring(L, -1)) luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

int strGsub(lua_State* L) {
    std::size_t srcl = 0, lp = 0;
    const char* src = luaL_checklstring(L, 1, &srcl);
    const char* p = luaL_checklstring(L, 2, &lp);
    const char* lastMatch = nullptr;
    int tr = lua_type(L, 3);
    lua_Integer maxN = luaL_optinteger(L, 4, static_cast<lua_Integer>(srcl) + 1);
    bool anchor = *p == '^';
    lua_Integer n = 0;
    bool changed = false;
    MatchState ms;
    luaL_Buffer b;
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    prepare(&ms, L, src, srcl, p, lp);
    while (n < maxN) {
        restart(&ms);
        const char* e = match(&ms, src, p);
        if (e && e != lastMatch) {
            n++;
            changed = addReplacement(&ms, &b, src, e, tr) || changed;
            src = lastMatch = e;
        } else if (src < ms.srcEnd) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, static_cast<std::size_t>(ms.srcEnd - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

}  // namespace

void openPatterns(lua_State* L) {
    lua_getglobal(L, LUA_STRLIBNAME);
    const luaL_Reg funcs[] = {
        {"find", strFind}, {"match", strMatch}, {"gmatch", strGmatch}, {"gsub", strGsub}, {nullptr, nullptr}};
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}

}  // namespace junction::lua::detail
