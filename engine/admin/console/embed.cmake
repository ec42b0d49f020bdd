# Writes the console's files into a C++ source (cmake -P): OUT the .cpp to
# write, DIR the folder of the files. Each file becomes a byte array with its
# content type and an ETag from its SHA-256 (see engine/admin/console_assets.h).
file(GLOB files RELATIVE ${DIR} ${DIR}/*.html ${DIR}/*.css ${DIR}/*.js ${DIR}/*.svg)
list(SORT files)
set(arrays "")
set(table "")
set(total 0)
set(index 0)
foreach(name ${files})
  file(READ ${DIR}/${name} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR size "${hexlen} / 2")
  math(EXPR total "${total} + ${size}")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  file(SHA256 ${DIR}/${name} sum)
  string(SUBSTRING "${sum}" 0 16 etag)
  if(name MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(name MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  elseif(name MATCHES "\\.js$")
    set(type "text/javascript; charset=utf-8")
  else()
    set(type "image/svg+xml")
  endif()
  string(APPEND arrays "const unsigned char f${index}[] = {\n${bytes}0};\n")
  string(APPEND table "    {\"${name}\", \"${type}\", \"\\\"${etag}\\\"\", {reinterpret_cast<const char*>(f${index}), ${size}}},\n")
  math(EXPR index "${index} + 1")
endforeach()
if(total GREATER 500000)
  message(FATAL_ERROR "the console's files are ${total} bytes; they are to stay under 500 KB")
endif()
file(WRITE ${OUT}.tmp "// Written by engine/admin/console/embed.cmake from engine/admin/console/: do not edit.\n"
     "#include \"engine/admin/console_assets.h\"\n\nnamespace junction::admin {\n\nnamespace {\n\n${arrays}\n}  // namespace\n\n"
     "extern const ConsoleAsset kConsoleAssets[] = {\n${table}};\n"
     "extern const std::size_t kConsoleAssetCount = ${index};\n\n}  // namespace junction::admin\n")
# Only a changed source is compiled again.
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
