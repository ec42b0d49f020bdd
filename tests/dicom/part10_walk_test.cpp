// The structural walk of Part 10 files against DCMTK's full parse: every
// sample file DCMTK reads walks cleanly with the same UIDs, every cut or
// garbled copy the walk accepts DCMTK accepts too, and what a broken transfer
// leaves is refused with a reason.
#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "connectors/dicom/part10_walk.h"

namespace fs = std::filesystem;
using junction::dicom::Part10Walk;
using junction::dicom::walkPart10;

namespace {

const std::string kSamples = "/usr/lib/python3/dist-packages/pydicom/data/test_files/";

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

Part10Walk walk(const std::string& bytes) {
    return walkPart10(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

// DCMTK's verdict on the same bytes, parsed whole from memory.
bool dcmtkReads(const std::string& bytes, DcmFileFormat& file) {
    DcmInputBufferStream in;
    in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
    in.setEos();
    file.transferInit();
    OFCondition c = file.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    file.transferEnd();
    return c.good();
}

// DCMTK's value of a UID attribute, or what the walk read when DCMTK holds it
// under another VR (a UN element's value is no string to DCMTK).
std::string dcmtkUid(DcmFileFormat& file, const DcmTagKey& tag, const std::string& walked) {
    DcmElement* e = nullptr;
    if (file.getDataset()->findAndGetElement(tag, e).bad() || !e) return {};
    if (e->ident() != EVR_UI) return walked;
    OFString v;
    e->getOFStringArray(v);
    return v.c_str();
}

}  // namespace

TEST_CASE("Every sample file DCMTK reads walks cleanly, with DCMTK's UIDs") {
    int walked = 0, deflated = 0;
    for (const auto& e : fs::directory_iterator(kSamples)) {
        if (e.path().extension() != ".dcm") continue;
        std::string bytes = slurp(e.path().string());
        if (bytes.size() < 132 || bytes.compare(128, 4, "DICM") != 0) continue;  // no Part 10 file
        DcmFileFormat file;
        if (!dcmtkReads(bytes, file)) continue;
        OFString ts;
        if (file.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts).bad() || ts.empty()) continue;
        INFO(e.path().filename().string());
        Part10Walk w = walk(bytes);
        if (!w.walkable) {
            CHECK(w.transferSyntaxUid == "1.2.840.10008.1.2.1.99");
            ++deflated;
            continue;
        }
        INFO(w.error);
        CHECK(w.ok);
        CHECK(w.transferSyntaxUid == ts.c_str());
        CHECK(w.sopInstanceUid == dcmtkUid(file, DCM_SOPInstanceUID, w.sopInstanceUid));
        CHECK(w.sopClassUid == dcmtkUid(file, DCM_SOPClassUID, w.sopClassUid));
        CHECK(w.studyUid == dcmtkUid(file, DCM_StudyInstanceUID, w.studyUid));
        CHECK(w.seriesUid == dcmtkUid(file, DCM_SeriesInstanceUID, w.seriesUid));
        ++walked;
    }
    // Implicit and explicit VR, big endian, JPEG, JPEG 2000, RLE, nested and UN sequences.
    CHECK(walked >= 40);
    CHECK(deflated == 1);  // image_dfl.dcm
}

// A cut is what a broken transfer leaves: whatever the walk accepts of it,
// DCMTK accepts too. Random bytes changed inside a file are another matter:
// DCMTK tolerates and refuses things the walk does not model (it reads the meta
// group by its group length, and knows VRs from its dictionary), so there the
// two must mostly agree. What the walk lets through, the engine's full parse
// after the C-STORE response still catches (the message is kept as ERROR).
TEST_CASE("A cut file the walk accepts, DCMTK accepts too, on changed bytes they mostly agree") {
    for (const char* name : {"CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "JPEG2000.dcm", "nested_priv_SQ.dcm"}) {
        std::string bytes = slurp(kSamples + name);
        INFO(name);
        REQUIRE(walk(bytes).ok);
        int refused = 0, cuts = 0;
        for (std::size_t cut = 133; cut < bytes.size(); cut += 37) {
            ++cuts;
            Part10Walk w = walk(bytes.substr(0, cut));
            if (!w.ok) {
                ++refused;
                CHECK(!w.error.empty());
                continue;
            }
            DcmFileFormat file;
            INFO("cut at " << cut);
            CHECK(dcmtkReads(bytes.substr(0, cut), file));
        }
        CHECK(refused * 10 >= cuts * 9);  // cuts fall inside values far more often than between them

        std::mt19937 rng(7);
        int flipsRefused = 0, disagree = 0;
        const int flips = 300;
        for (int i = 0; i < flips; ++i) {
            std::string g = bytes;
            for (int k = 0; k < 4; ++k) g[132 + rng() % (g.size() - 132)] = static_cast<char>(rng());
            Part10Walk w = walk(g);
            if (!w.ok) {
                ++flipsRefused;
                continue;
            }
            DcmFileFormat file;
            if (!dcmtkReads(g, file)) ++disagree;
        }
        CHECK(flipsRefused > 0);
        CHECK(disagree * 100 <= flips * 3);
    }
}

TEST_CASE("What a broken transfer leaves is refused with a reason") {
    std::string ct = slurp(kSamples + "CT_small.dcm");
    Part10Walk half = walk(ct.substr(0, ct.size() / 2));
    CHECK_FALSE(half.ok);
    CHECK(half.error.find("runs past the end") != std::string::npos);

    // The dataset the integration test sends as "corrupt": a UI value claiming 65535 bytes.
    std::string meta = ct.substr(0, 132 + 12 + 192);  // preamble, DICM, meta group
    std::string garbage = meta + std::string("\x08\x00\x16\x00UI\xff\xff", 8) + std::string(64, '\x5a');
    Part10Walk g = walk(garbage);
    CHECK_FALSE(g.ok);
    CHECK(g.error.find("(0008,0016)") != std::string::npos);

    CHECK_FALSE(walk("not dicom").ok);
    CHECK(walk(std::string(200, '\0')).error == "no DICOM file preamble");

    // A sequence of undefined length without its delimiter.
    std::string seq = meta + std::string("\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff", 12) +
                      std::string("\xfe\xff\x00\xe0\x00\x00\x00\x00", 8);
    Part10Walk s = walk(seq);
    CHECK_FALSE(s.ok);
    CHECK(s.error.find("no delimiter") != std::string::npos);
    // ... and with it.
    CHECK(walk(seq + std::string("\xfe\xff\xdd\xe0\x00\x00\x00\x00", 8)).ok);
}
