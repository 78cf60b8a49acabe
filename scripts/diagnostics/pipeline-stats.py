#!/usr/bin/env python3
"""Diagnostic (not the bench): what the Vulkan driver says about each compiled kernel.

Reads the SPIR-V disassembly that `dump-spirv` writes (one `.spvasm` file per kernel, Dawn's own
translation of the WGSL), assembles it with `spirv-as`, builds a compute pipeline from it with
VK_KHR_pipeline_executable_properties and prints every statistic the driver reports for it
(registers, workgroup memory, spills, as the driver names them). Dawn offers no such query, and
the occupancy of the tensor-core kernels is set as much by registers as by workgroup memory
(docs/perf-notes.md, twentieth session), so this is where their register counts come from.

Plain ctypes over libvulkan.so.1, no Vulkan headers: the device is made with every feature the
driver reports (robust buffer access off, as the bench's Dawn device has it) and the extensions
the kernels need. On the GPU machine, after `node .gpu-kit/dump-spirv.mjs DIR > DIR/raw.txt`:
  python3 scripts/diagnostics/pipeline-stats.py DIR [--spirv-as PATH] [--only LABEL] [--internal]
`--internal` also prints the driver's internal representations where it offers them as text (the
H200's driver offers none). `scripts/diagnostics/spirv-as-kit.sh` puts an assembler that knows
cooperative matrices into .gpu-kit/spirv; `--spirv-as` names it with its loader.
"""
import ctypes as C
import os
import re
import subprocess
import sys

VK_SUCCESS = 0
# Structure types (VkStructureType).
APPLICATION_INFO = 0
INSTANCE_CREATE_INFO = 1
DEVICE_QUEUE_CREATE_INFO = 2
DEVICE_CREATE_INFO = 3
SHADER_MODULE_CREATE_INFO = 16
PIPELINE_SHADER_STAGE_CREATE_INFO = 18
COMPUTE_PIPELINE_CREATE_INFO = 29
PIPELINE_LAYOUT_CREATE_INFO = 30
DESCRIPTOR_SET_LAYOUT_CREATE_INFO = 32
FEATURES_2 = 1000059000
VULKAN_1_1_FEATURES = 49
VULKAN_1_2_FEATURES = 51
VULKAN_1_3_FEATURES = 53
PIPELINE_EXECUTABLE_FEATURES = 1000269000
PIPELINE_INFO = 1000269001
PIPELINE_EXECUTABLE_PROPERTIES = 1000269002
PIPELINE_EXECUTABLE_INFO = 1000269003
PIPELINE_EXECUTABLE_STATISTIC = 1000269004
PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION = 1000269005
COOPERATIVE_MATRIX_FEATURES = 1000506000
SUBGROUP_UNIFORM_CONTROL_FLOW_FEATURES = 1000323000
REQUIRED_SUBGROUP_SIZE_CREATE_INFO = 1000225001

CAPTURE_STATISTICS = 0x40
CAPTURE_INTERNAL_REPRESENTATIONS = 0x80
SHADER_STAGE_COMPUTE = 0x20
STORAGE_BUFFER = 7
UNIFORM_BUFFER = 6

# Extensions a kernel's SPIR-V may need, and the feature structure each adds to the chain.
WANTED_EXTENSIONS = {
    b'VK_KHR_pipeline_executable_properties': PIPELINE_EXECUTABLE_FEATURES,
    b'VK_KHR_cooperative_matrix': COOPERATIVE_MATRIX_FEATURES,
    b'VK_KHR_shader_subgroup_uniform_control_flow': SUBGROUP_UNIFORM_CONTROL_FLOW_FEATURES,
}

vk = C.CDLL('libvulkan.so.1')
u64 = C.c_uint64


class Header(C.Structure):
    """The start of every extensible Vulkan structure."""

    _fields_ = [('sType', C.c_uint32), ('pNext', C.c_void_p)]


class ApplicationInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('pApplicationName', C.c_char_p),
        ('applicationVersion', C.c_uint32),
        ('pEngineName', C.c_char_p),
        ('engineVersion', C.c_uint32),
        ('apiVersion', C.c_uint32),
    ]


class InstanceCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('pApplicationInfo', C.POINTER(ApplicationInfo)),
        ('enabledLayerCount', C.c_uint32),
        ('ppEnabledLayerNames', C.c_void_p),
        ('enabledExtensionCount', C.c_uint32),
        ('ppEnabledExtensionNames', C.c_void_p),
    ]


class DeviceQueueCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('queueFamilyIndex', C.c_uint32),
        ('queueCount', C.c_uint32),
        ('pQueuePriorities', C.POINTER(C.c_float)),
    ]


class DeviceCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('queueCreateInfoCount', C.c_uint32),
        ('pQueueCreateInfos', C.POINTER(DeviceQueueCreateInfo)),
        ('enabledLayerCount', C.c_uint32),
        ('ppEnabledLayerNames', C.c_void_p),
        ('enabledExtensionCount', C.c_uint32),
        ('ppEnabledExtensionNames', C.POINTER(C.c_char_p)),
        ('pEnabledFeatures', C.c_void_p),
    ]


class ExtensionProperties(C.Structure):
    _fields_ = [('extensionName', C.c_char * 256), ('specVersion', C.c_uint32)]


class ShaderModuleCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [('flags', C.c_uint32), ('codeSize', C.c_size_t), ('pCode', C.c_void_p)]


class DescriptorSetLayoutBinding(C.Structure):
    _fields_ = [
        ('binding', C.c_uint32),
        ('descriptorType', C.c_uint32),
        ('descriptorCount', C.c_uint32),
        ('stageFlags', C.c_uint32),
        ('pImmutableSamplers', C.c_void_p),
    ]


class DescriptorSetLayoutCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('bindingCount', C.c_uint32),
        ('pBindings', C.POINTER(DescriptorSetLayoutBinding)),
    ]


class PushConstantRange(C.Structure):
    _fields_ = [('stageFlags', C.c_uint32), ('offset', C.c_uint32), ('size', C.c_uint32)]


class PipelineLayoutCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('setLayoutCount', C.c_uint32),
        ('pSetLayouts', C.POINTER(u64)),
        ('pushConstantRangeCount', C.c_uint32),
        ('pPushConstantRanges', C.POINTER(PushConstantRange)),
    ]


class RequiredSubgroupSize(C.Structure):
    _fields_ = Header._fields_ + [('requiredSubgroupSize', C.c_uint32)]


class ShaderStageCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('stage', C.c_uint32),
        ('module', u64),
        ('pName', C.c_char_p),
        ('pSpecializationInfo', C.c_void_p),
    ]


class ComputePipelineCreateInfo(C.Structure):
    _fields_ = Header._fields_ + [
        ('flags', C.c_uint32),
        ('stage', ShaderStageCreateInfo),
        ('layout', u64),
        ('basePipelineHandle', u64),
        ('basePipelineIndex', C.c_int32),
    ]


class PipelineInfo(C.Structure):
    _fields_ = Header._fields_ + [('pipeline', u64)]


class ExecutableProperties(C.Structure):
    _fields_ = Header._fields_ + [
        ('stages', C.c_uint32),
        ('name', C.c_char * 256),
        ('description', C.c_char * 256),
        ('subgroupSize', C.c_uint32),
    ]


class ExecutableInfo(C.Structure):
    _fields_ = Header._fields_ + [('pipeline', u64), ('executableIndex', C.c_uint32)]


class StatisticValue(C.Union):
    _fields_ = [('b32', C.c_uint32), ('i64', C.c_int64), ('u64', C.c_uint64), ('f64', C.c_double)]


class Statistic(C.Structure):
    _fields_ = Header._fields_ + [
        ('name', C.c_char * 256),
        ('description', C.c_char * 256),
        ('format', C.c_uint32),
        ('value', StatisticValue),
    ]


class InternalRepresentation(C.Structure):
    _fields_ = Header._fields_ + [
        ('name', C.c_char * 256),
        ('description', C.c_char * 256),
        ('isText', C.c_uint32),
        ('dataSize', C.c_size_t),
        ('pData', C.c_void_p),
    ]


def check(result, what):
    if result != VK_SUCCESS:
        raise SystemExit(f'pipeline-stats: {what} failed with VkResult {result}')


def raw_structure(s_type, size=2048):
    """A zeroed structure of `size` bytes with its sType set: the driver fills what it knows."""
    buffer = C.create_string_buffer(size)
    header = Header.from_buffer(buffer)
    header.sType = s_type
    return buffer


def make_device():
    app = ApplicationInfo(APPLICATION_INFO, None, b'webattn pipeline-stats', 1, b'none', 1, (1 << 22) | (3 << 12))
    info = InstanceCreateInfo(INSTANCE_CREATE_INFO, None, 0, C.pointer(app), 0, None, 0, None)
    instance = C.c_void_p()
    check(vk.vkCreateInstance(C.byref(info), None, C.byref(instance)), 'vkCreateInstance')
    count = C.c_uint32()
    vk.vkEnumeratePhysicalDevices(instance, C.byref(count), None)
    physicals = (C.c_void_p * count.value)()
    vk.vkEnumeratePhysicalDevices(instance, C.byref(count), physicals)
    # The first device whose name is not a CPU driver's.
    chosen = None
    for physical in physicals:
        properties = C.create_string_buffer(4096)
        vk.vkGetPhysicalDeviceProperties(C.c_void_p(physical), properties)
        name = properties.raw[20:276].split(b'\0')[0].decode()
        if 'SwiftShader' not in name and 'llvmpipe' not in name:
            chosen = (C.c_void_p(physical), name)
            break
    if chosen is None:
        raise SystemExit('pipeline-stats: no GPU among the Vulkan devices')
    physical, name = chosen
    # Extensions among the wanted ones that the device has.
    vk.vkEnumerateDeviceExtensionProperties(physical, None, C.byref(count), None)
    available = (ExtensionProperties * count.value)()
    vk.vkEnumerateDeviceExtensionProperties(physical, None, C.byref(count), available)
    names = {e.extensionName for e in available}
    extensions = [e for e in WANTED_EXTENSIONS if e in names]
    if b'VK_KHR_pipeline_executable_properties' not in extensions:
        raise SystemExit(f'pipeline-stats: {name} has no VK_KHR_pipeline_executable_properties')
    # Every feature the device reports, through one chain queried and then passed back.
    chain = [raw_structure(t) for t in [FEATURES_2, VULKAN_1_1_FEATURES, VULKAN_1_2_FEATURES, VULKAN_1_3_FEATURES]]
    chain += [raw_structure(WANTED_EXTENSIONS[e]) for e in extensions]
    for first, second in zip(chain, chain[1:]):
        Header.from_buffer(first).pNext = C.cast(second, C.c_void_p)
    vk.vkGetPhysicalDeviceFeatures2(physical, chain[0])
    # robustBufferAccess (the first of VkPhysicalDeviceFeatures) and robustImageAccess (the first
    # of the 1.3 features) off: the bench's device checks its own bounds.
    C.c_uint32.from_buffer(chain[0], 16).value = 0
    C.c_uint32.from_buffer(chain[3], 16).value = 0
    families = C.create_string_buffer(24 * 64)
    vk.vkGetPhysicalDeviceQueueFamilyProperties(physical, C.byref(count), None)
    vk.vkGetPhysicalDeviceQueueFamilyProperties(physical, C.byref(count), families)
    family = next(i for i in range(count.value) if C.c_uint32.from_buffer(families, 24 * i).value & 2)
    priority = C.c_float(1.0)
    queue = DeviceQueueCreateInfo(DEVICE_QUEUE_CREATE_INFO, None, 0, family, 1, C.pointer(priority))
    extension_names = (C.c_char_p * len(extensions))(*extensions)
    device_info = DeviceCreateInfo(
        DEVICE_CREATE_INFO, C.cast(chain[0], C.c_void_p), 0, 1, C.pointer(queue), 0, None,
        len(extensions), extension_names, None,
    )
    device = C.c_void_p()
    check(vk.vkCreateDevice(physical, C.byref(device_info), None, C.byref(device)), 'vkCreateDevice')
    return device, name


def device_function(device, name, *argtypes):
    vk.vkGetDeviceProcAddr.restype = C.c_void_p
    address = vk.vkGetDeviceProcAddr(device, name.encode())
    if not address:
        raise SystemExit(f'pipeline-stats: the device has no {name}')
    return C.CFUNCTYPE(C.c_int32, *argtypes)(address)


def bindings_of(asm):
    """(set, binding, descriptor type) of every resource variable, and whether push constants are used."""
    decorations = {}
    for name, what, value in re.findall(r'OpDecorate (%\S+) (DescriptorSet|Binding) (\d+)', asm):
        decorations.setdefault(name, {})[what] = int(value)
    kinds = dict(re.findall(r'(%\S+) = OpVariable %\S+ (StorageBuffer|Uniform)\b', asm))
    bindings = []
    for name, d in decorations.items():
        if name in kinds and 'DescriptorSet' in d and 'Binding' in d:
            kind = STORAGE_BUFFER if kinds[name] == 'StorageBuffer' else UNIFORM_BUFFER
            bindings.append((d['DescriptorSet'], d['Binding'], kind))
    return sorted(bindings), ' PushConstant' in asm


def pipeline_of(device, spirv, asm):
    code = C.create_string_buffer(spirv, len(spirv))
    module = u64()
    info = ShaderModuleCreateInfo(SHADER_MODULE_CREATE_INFO, None, 0, len(spirv), C.cast(code, C.c_void_p))
    check(vk.vkCreateShaderModule(device, C.byref(info), None, C.byref(module)), 'vkCreateShaderModule')
    bindings, push = bindings_of(asm)
    sets = max((s for s, _, _ in bindings), default=-1) + 1
    layouts = (u64 * max(sets, 1))()
    for s in range(sets):
        of_set = [DescriptorSetLayoutBinding(b, kind, 1, SHADER_STAGE_COMPUTE, None) for t, b, kind in bindings if t == s]
        array = (DescriptorSetLayoutBinding * max(len(of_set), 1))(*of_set)
        set_info = DescriptorSetLayoutCreateInfo(DESCRIPTOR_SET_LAYOUT_CREATE_INFO, None, 0, len(of_set), array)
        check(
            vk.vkCreateDescriptorSetLayout(device, C.byref(set_info), None, C.byref(layouts, 8 * s)),
            'vkCreateDescriptorSetLayout',
        )
    ranges = PushConstantRange(SHADER_STAGE_COMPUTE, 0, 128)
    layout_info = PipelineLayoutCreateInfo(
        PIPELINE_LAYOUT_CREATE_INFO, None, 0, sets, layouts, 1 if push else 0, C.pointer(ranges) if push else None
    )
    layout = u64()
    check(vk.vkCreatePipelineLayout(device, C.byref(layout_info), None, C.byref(layout)), 'vkCreatePipelineLayout')
    entry = re.search(r'OpEntryPoint GLCompute %\S+ "([^"]+)"', asm).group(1).encode()
    # Dawn pins the subgroup size it was asked for; the kernels here ask for 32 where they pin.
    subgroup = RequiredSubgroupSize(REQUIRED_SUBGROUP_SIZE_CREATE_INFO, None, 32)
    stage = ShaderStageCreateInfo(
        PIPELINE_SHADER_STAGE_CREATE_INFO, C.cast(C.pointer(subgroup), C.c_void_p), 0, SHADER_STAGE_COMPUTE,
        module, entry, None,
    )
    create = ComputePipelineCreateInfo(
        COMPUTE_PIPELINE_CREATE_INFO, None, CAPTURE_STATISTICS | CAPTURE_INTERNAL_REPRESENTATIONS, stage, layout, 0, -1
    )
    pipeline = u64()
    check(
        vk.vkCreateComputePipelines(device, u64(0), 1, C.byref(create), None, C.byref(pipeline)),
        'vkCreateComputePipelines',
    )
    return pipeline


def describe(device, pipeline, internal):
    get_executables = device_function(device, 'vkGetPipelineExecutablePropertiesKHR', C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p)
    get_statistics = device_function(device, 'vkGetPipelineExecutableStatisticsKHR', C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p)
    get_internal = device_function(
        device, 'vkGetPipelineExecutableInternalRepresentationsKHR', C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p
    )
    info = PipelineInfo(PIPELINE_INFO, None, pipeline)
    count = C.c_uint32()
    get_executables(device, C.byref(info), C.byref(count), None)
    executables = (ExecutableProperties * count.value)(*[ExecutableProperties(PIPELINE_EXECUTABLE_PROPERTIES) for _ in range(count.value)])
    get_executables(device, C.byref(info), C.byref(count), C.byref(executables))
    lines = []
    for index, executable in enumerate(executables):
        which = ExecutableInfo(PIPELINE_EXECUTABLE_INFO, None, pipeline, index)
        get_statistics(device, C.byref(which), C.byref(count), None)
        statistics = (Statistic * count.value)(*[Statistic(PIPELINE_EXECUTABLE_STATISTIC) for _ in range(count.value)])
        get_statistics(device, C.byref(which), C.byref(count), C.byref(statistics))
        values = []
        for s in statistics:
            value = [s.value.b32, s.value.i64, s.value.u64, s.value.f64][s.format]
            values.append(f'{s.name.decode()}={value}')
        lines.append(f'  {executable.name.decode()} (subgroup {executable.subgroupSize}): ' + ', '.join(values))
        if internal:
            get_internal(device, C.byref(which), C.byref(count), None)
            reps = (InternalRepresentation * count.value)(
                *[InternalRepresentation(PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION) for _ in range(count.value)]
            )
            get_internal(device, C.byref(which), C.byref(count), C.byref(reps))
            buffers = [C.create_string_buffer(max(rep.dataSize, 1)) for rep in reps]
            for rep, data in zip(reps, buffers):
                rep.pData = C.cast(data, C.c_void_p)
            get_internal(device, C.byref(which), C.byref(count), C.byref(reps))
            for rep in reps:
                text = C.string_at(rep.pData, rep.dataSize).decode(errors='replace') if rep.isText else f'{rep.dataSize} bytes'
                lines.append(f'  -- {rep.name.decode()}: {rep.description.decode()}\n{text}')
    return lines


def dumped_kernels(folder):
    """(label, SPIR-V disassembly) of each kernel of dump-spirv's `raw.txt`, labelled from `kernels.json`."""
    import json

    labels = {k['code'].strip(): k['label'] for k in json.load(open(os.path.join(folder, 'kernels.json')))}
    # Dawn logs each module's WGSL, then its SPIR-V, each entry after a line 'info:'.
    chunks = ('\n' + open(os.path.join(folder, 'raw.txt')).read()).split('\ninfo:\n')
    wgsl = None
    for chunk in chunks:
        if chunk.startswith('// Dumped WGSL:\n'):
            wgsl = chunk[len('// Dumped WGSL:\n'):].strip()
        elif chunk.startswith('/* Dumped SPIRV disassembly */') and wgsl is not None:
            # Only the disassembly's own lines: anything else on stdout may follow it.
            lines = chunk.split('\n')[1:]
            asm = '\n'.join(x for x in lines if re.match(r'\s*(;|Op|%\S+ = Op)', x))
            yield labels.get(wgsl, 'unlabelled'), asm
            wgsl = None


def main():
    args = sys.argv[1:]
    internal = '--internal' in args
    spirv_as = 'spirv-as'
    if '--spirv-as' in args:
        spirv_as = args[args.index('--spirv-as') + 1]
    only = args[args.index('--only') + 1] if '--only' in args else ''
    folder = next(a for a in args if not a.startswith('--') and a not in (spirv_as, only))
    device, name = make_device()
    print(f'# {name}')
    for index, (label, asm) in enumerate(dumped_kernels(folder)):
        if only not in label:
            continue
        path = os.path.join(folder, f'{index:03d}.spvasm')
        open(path, 'w').write(asm)
        spirv = subprocess.run(
            [*spirv_as.split(), '--target-env', 'vulkan1.3', path, '-o', '-'], capture_output=True, check=False
        )
        if spirv.returncode != 0:
            print(f'{label}: spirv-as failed: {spirv.stderr.decode().strip()[:300]}')
            continue
        try:
            pipeline = pipeline_of(device, spirv.stdout, asm)
            print(label)
            print('\n'.join(describe(device, pipeline, internal)))
        except SystemExit as failure:
            print(f'{label}: {failure}')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
