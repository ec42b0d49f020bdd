// Modality Worklist matching (mwl_matching.h): wildcards, date and time
// ranges, sequence matching, and the C-FIND response built with the keys the
// query asked for.
#include "connectors/dicom/mwl_matching.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/dicom/dicom_text.h"

namespace junction::dicom {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t p = s.find(sep, start);
        out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
        if (p == std::string::npos) break;
        start = p + 1;
    }
    return out;
}

// UTF-8 text as code points (invalid bytes pass through as themselves), so
// that ? matches one character, not one byte.
std::u32string codepoints(const std::string& s, bool foldCase) {
    std::u32string out;
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
        char32_t cp = extra ? static_cast<char32_t>(c & (0x3F >> extra)) : c;
        bool ok = i + extra < s.size();
        for (std::size_t k = 1; ok && k <= extra; ++k) {
            unsigned char n = static_cast<unsigned char>(s[i + k]);
            if ((n & 0xC0) != 0x80) ok = false;
            else cp = (cp << 6) | (n & 0x3F);
        }
        if (!ok) {
            cp = c;
            extra = 0;
        }
        if (foldCase && cp < 128) cp = static_cast<char32_t>(std::tolower(static_cast<int>(cp)));
        out.push_back(cp);
        i += 1 + extra;
    }
    return out;
}

bool wildcard(const std::u32string& p, const std::u32string& s) {
    std::size_t pi = 0, si = 0, star = std::u32string::npos, mark = 0;
    while (si < s.size()) {
        if (pi < p.size() && (p[pi] == U'?' || p[pi] == s[si])) {
            ++pi;
            ++si;
        } else if (pi < p.size() && p[pi] == U'*') {
            star = pi++;
            mark = si;
        } else if (star != std::u32string::npos) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == U'*') ++pi;
    return pi == p.size();
}

bool wildcardMatch(const std::string& pattern, const std::string& value, bool foldCase) {
    return wildcard(codepoints(pattern, foldCase), codepoints(value, foldCase));
}

std::string digitsOnly(const std::string& s, const char* drop) {
    std::string out;
    for (char c : s)
        if (!std::strchr(drop, c) && c != ' ') out += c;
    return out;
}

std::string normDate(const std::string& d) { return digitsOnly(d, ".-"); }

// HHMMSS.ffffff, missing parts filled with zeros (low) or their maximum (high).
std::string normTime(const std::string& t, bool high) {
    std::string s = digitsOnly(t, ":");
    std::string hms = s.substr(0, s.find('.'));
    std::string frac = s.find('.') == std::string::npos ? std::string() : s.substr(s.find('.') + 1);
    static const char* lowFill = "000000";
    static const char* highFill = "235959";
    if (hms.size() < 6) {
        hms += std::string(high ? highFill : lowFill).substr(hms.size());
        if (high) frac = "999999";
    }
    if (frac.size() < 6) frac += std::string(6 - frac.size(), high ? '9' : '0');
    return hms.substr(0, 6) + "." + frac.substr(0, 6);
}

// Splits "A-B", "A-", "-B" into bounds; a single value gives A == B.
bool range(const std::string& q, std::string& lo, std::string& hi) {
    std::size_t dash = q.find('-');
    if (dash == std::string::npos) {
        lo = hi = q;
        return false;
    }
    lo = trimSpaces(q.substr(0, dash));
    hi = trimSpaces(q.substr(dash + 1));
    return true;
}

bool matchDate(const std::string& q, const std::string& v) {
    std::string d = normDate(v);
    if (d.empty()) return false;
    std::string lo, hi;
    if (!range(q, lo, hi)) return q.find_first_of("*?") != std::string::npos ? wildcardMatch(q, v, false) : d == normDate(q);
    return (lo.empty() || d >= normDate(lo)) && (hi.empty() || d <= normDate(hi));
}

bool matchTime(const std::string& q, const std::string& v) {
    if (trimSpaces(v).empty()) return false;
    std::string t = normTime(v, false);
    std::string lo, hi;
    range(q, lo, hi);
    return (lo.empty() || t >= normTime(lo, false)) && (hi.empty() || t <= normTime(hi, true));
}

bool matchDateTimeValue(const std::string& q, const std::string& v) {
    std::string dt = digitsOnly(v, "");
    if (dt.empty()) return false;
    std::string lo, hi;
    if (!range(q, lo, hi)) return dt.compare(0, lo.size(), lo) == 0;
    return (lo.empty() || dt >= lo) && (hi.empty() || dt.substr(0, hi.size()) <= hi);
}

std::string normName(const std::string& pn) {
    std::string s = trimSpaces(pn);
    while (!s.empty() && (s.back() == '^' || s.back() == '=' || s.back() == ' ')) s.pop_back();
    return s;
}

bool matchOne(const std::string& vr, const std::string& q, const std::string& v) {
    if (vr == "DA") return matchDate(q, v);
    if (vr == "TM") return matchTime(q, v);
    if (vr == "DT") return matchDateTimeValue(q, v);
    if (vr == "PN") return wildcardMatch(normName(q), normName(v), true);
    if (vr == "UI") return q == trimSpaces(v);
    return wildcardMatch(q, trimSpaces(v), false);
}

std::string stringValue(DcmElement* e) {
    if (!e) return {};
    OFString s;
    if (e->getOFStringArray(s).bad()) return {};
    return s.c_str();
}

bool hasNonAscii(DcmItem& item) {
    for (unsigned long i = 0; i < item.card(); ++i) {
        DcmElement* e = item.getElement(i);
        if (e->ident() == EVR_SQ) {
            auto* seq = static_cast<DcmSequenceOfItems*>(e);
            for (unsigned long k = 0; k < seq->card(); ++k)
                if (hasNonAscii(*seq->getItem(k))) return true;
        } else if (e->isAffectedBySpecificCharacterSet()) {
            for (unsigned char c : stringValue(e))
                if (c >= 0x80) return true;
        }
    }
    return false;
}

void addEmpty(DcmItem& resp, const DcmTag& tag) {
    DcmElement* e = nullptr;
    if (DcmItem::newDicomElementWithVR(e, tag).good() && e) {
        if (resp.insert(e, true).bad()) delete e;
    }
}

void addCopy(DcmItem& resp, DcmElement* from, const DcmTag& tag) {
    if (!from) return addEmpty(resp, tag);
    DcmElement* copy = OFstatic_cast(DcmElement*, from->clone());
    if (resp.insert(copy, true).bad()) delete copy;
}

bool stringMatchable(DcmEVR vr) {
    switch (vr) {
    case EVR_AE: case EVR_AS: case EVR_CS: case EVR_DA: case EVR_DS: case EVR_DT: case EVR_IS: case EVR_LO:
    case EVR_LT: case EVR_PN: case EVR_SH: case EVR_ST: case EVR_TM: case EVR_UC: case EVR_UI: case EVR_UR:
    case EVR_UT:
        return true;
    default:
        return false;
    }
}

// What a sequence key with no item, or one empty item, asks for (universal
// sequence matching, C.2.2.2.6): for the sequences of the worklist whose items
// the standard defines (K.6.1), their attributes, each returned with the
// worklist item's value or empty. nullptr for other sequences, which return
// whole, as the worklist item has them.
std::unique_ptr<DcmItem> universalKeys(const DcmTagKey& sequence) {
    static const std::vector<DcmTagKey> step = {
        DCM_Modality, DCM_RequestedContrastAgent, DCM_ScheduledStationAETitle, DCM_ScheduledProcedureStepStartDate,
        DCM_ScheduledProcedureStepStartTime, DCM_ScheduledProcedureStepEndDate, DCM_ScheduledProcedureStepEndTime,
        DCM_ScheduledPerformingPhysicianName, DCM_ScheduledProcedureStepDescription, DCM_ScheduledProtocolCodeSequence,
        DCM_ScheduledProcedureStepID, DCM_ScheduledStationName, DCM_ScheduledProcedureStepLocation, DCM_PreMedication,
        DCM_ScheduledProcedureStepStatus, DCM_CommentsOnTheScheduledProcedureStep};
    static const std::vector<DcmTagKey> code = {DCM_CodeValue, DCM_CodingSchemeDesignator, DCM_CodingSchemeVersion,
                                                DCM_CodeMeaning};
    static const std::vector<DcmTagKey> reference = {DCM_ReferencedSOPClassUID, DCM_ReferencedSOPInstanceUID};
    const std::vector<DcmTagKey>* keys = nullptr;
    if (sequence == DCM_ScheduledProcedureStepSequence) keys = &step;
    else if (sequence == DCM_ScheduledProtocolCodeSequence || sequence == DCM_RequestedProcedureCodeSequence) keys = &code;
    else if (sequence == DCM_ReferencedStudySequence || sequence == DCM_ReferencedPatientSequence) keys = &reference;
    if (!keys) return nullptr;
    auto item = std::make_unique<DcmItem>();
    for (const auto& k : *keys) addEmpty(*item, DcmTag(k));  // a sequence among them: universal in its turn
    return item;
}

bool matchItem(DcmItem& query, DcmItem& cand, DcmItem& resp) {
    DcmElement* qDate = nullptr;
    DcmElement* qTime = nullptr;
    query.findAndGetElement(DCM_ScheduledProcedureStepStartDate, qDate, OFFalse);
    query.findAndGetElement(DCM_ScheduledProcedureStepStartTime, qTime, OFFalse);
    bool combined = qDate && qTime && !trimSpaces(stringValue(qDate)).empty() && !trimSpaces(stringValue(qTime)).empty();

    for (unsigned long i = 0; i < query.card(); ++i) {
        DcmElement* q = query.getElement(i);
        DcmTag tag = q->getTag();
        if (tag.getElement() == 0x0000 || tag == DCM_SpecificCharacterSet) continue;
        DcmElement* c = nullptr;
        cand.findAndGetElement(tag, c, OFFalse);

        if (q->ident() == EVR_SQ) {
            auto* qs = static_cast<DcmSequenceOfItems*>(q);
            DcmItem* qItem = qs->card() > 0 ? qs->getItem(0) : nullptr;
            std::unique_ptr<DcmItem> expanded;
            if (!qItem || qItem->card() == 0) {  // universal
                expanded = universalKeys(tag);
                if (!expanded) {  // the whole sequence
                    if (c && c->ident() == EVR_SQ) addCopy(resp, c, tag);
                    else resp.insert(new DcmSequenceOfItems(tag), true);
                    continue;
                }
                qItem = expanded.get();
            }
            auto out = std::make_unique<DcmSequenceOfItems>(tag);
            auto* cs = (c && c->ident() == EVR_SQ) ? static_cast<DcmSequenceOfItems*>(c) : nullptr;
            if (cs && cs->card() > 0) {
                for (unsigned long k = 0; k < cs->card(); ++k) {
                    auto ri = std::make_unique<DcmItem>();
                    if (matchItem(*qItem, *cs->getItem(k), *ri)) out->insert(ri.release());
                }
                if (out->card() == 0) return false;
            } else {
                // The item has no such sequence, or no item in it: it matches
                // when every key asked inside is universal, and the sequence
                // returns with no item (not one item of empty values).
                DcmItem none, unused;
                if (!matchItem(*qItem, none, unused)) return false;
            }
            resp.insert(out.release(), true);
            continue;
        }

        std::string qv = trimSpaces(stringValue(q));
        if (combined && tag == DCM_ScheduledProcedureStepStartDate) {
            DcmElement* cTime = nullptr;
            cand.findAndGetElement(DCM_ScheduledProcedureStepStartTime, cTime, OFFalse);
            if (!matchDateTime(qv, trimSpaces(stringValue(qTime)), stringValue(c), stringValue(cTime))) return false;
        } else if (!stringMatchable(q->ident())) {
            // Binary values (US, UL, FD, OB ...) are return keys only: some SCUs
            // send PregnancyStatus 0 for "no value", which must not filter.
        } else if (!(combined && tag == DCM_ScheduledProcedureStepStartTime)) {
            if (!matchValue(DcmVR(q->ident()).getValidVRName(), qv, stringValue(c))) return false;
        }
        addCopy(resp, c, tag);
    }
    return true;
}

}  // namespace

bool matchValue(const std::string& vr, const std::string& query, const std::string& value) {
    std::string q = trimSpaces(query);
    if (q.empty() || q == "*") return true;
    std::vector<std::string> alternatives = split(q, '\\');
    for (const std::string& v : split(value, '\\'))
        for (const std::string& a : alternatives)
            if (matchOne(vr, trimSpaces(a), v)) return true;
    return false;
}

bool matchDateTime(const std::string& queryDate, const std::string& queryTime, const std::string& date,
                   const std::string& time) {
    std::string qd = trimSpaces(queryDate), qt = trimSpaces(queryTime);
    if (qd.empty()) return matchValue("TM", qt, time);
    if (qt.empty()) return matchValue("DA", qd, date);
    std::string d = normDate(date);
    if (d.empty()) return false;
    std::string dlo, dhi, tlo, thi;
    range(qd, dlo, dhi);
    range(qt, tlo, thi);
    std::string cand = d + normTime(trimSpaces(time), false);
    if (!dlo.empty() && cand < normDate(dlo) + normTime(tlo, false)) return false;
    if (!dhi.empty() && cand > normDate(dhi) + normTime(thi, true)) return false;
    return true;
}

std::unique_ptr<DcmDataset> matchWorklistItem(DcmItem& query, DcmItem& item) {
    auto resp = std::make_unique<DcmDataset>();
    if (!matchItem(query, item, *resp)) return nullptr;
    if (hasNonAscii(*resp)) resp->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
    return resp;
}

bool toUtf8(DcmDataset& ds, std::string* error) {
    OFString cs;
    if (ds.findAndGetOFStringArray(DCM_SpecificCharacterSet, cs).bad()) return true;  // default repertoire
    std::string s = trimSpaces(cs.c_str());
    if (s.empty() || s == "ISO_IR 192" || s == "ISO_IR 6") return true;
    OFCondition c = ds.convertToUTF8();
    if (c.bad()) {
        if (error) *error = "cannot convert from " + s + " to UTF-8: " + c.text();
        return false;
    }
    return true;
}

store::WorklistFilter worklistFilterFor(DcmItem& query) {
    store::WorklistFilter f;
    auto get = [](DcmItem& item, const DcmTagKey& tag, bool personName = false) {
        OFString v;
        if (item.findAndGetOFStringArray(tag, v, OFFalse).bad()) return std::string();
        std::string s = trimSpaces(v.c_str());
        if (s == "*" || s.find('\\') != std::string::npos) return std::string();  // universal / value lists
        if (personName) {
            if (s.find('=') != std::string::npos) return std::string();  // ideographic groups
            s = normName(s);
        }
        return s;
    };
    f.patientId = get(query, DCM_PatientID);
    f.patientName = get(query, DCM_PatientName, true);
    f.accessionNumber = get(query, DCM_AccessionNumber);
    f.requestedProcedureId = get(query, DCM_RequestedProcedureID);
    f.studyInstanceUid = get(query, DCM_StudyInstanceUID);
    DcmItem* sps = nullptr;
    if (query.findAndGetSequenceItem(DCM_ScheduledProcedureStepSequence, sps, 0).good() && sps) {
        f.modality = get(*sps, DCM_Modality);
        f.stationAeTitle = get(*sps, DCM_ScheduledStationAETitle);
        f.spsStartDate = get(*sps, DCM_ScheduledProcedureStepStartDate);
        // A time range across a date range is one combined range; the columns
        // cannot express that, so the time is left to the matcher then.
        if (f.spsStartDate.find('-') == std::string::npos)
            f.spsStartTime = get(*sps, DCM_ScheduledProcedureStepStartTime);
    }
    return f;
}

}  // namespace junction::dicom
