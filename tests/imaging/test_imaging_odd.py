"""The ``odd/`` corpus end to end: every file loads correctly or is rejected with a reason.

``ODD_OUTCOMES`` records, per file of ``MANIFEST.csv``, what MedPrint does with that file on its
own: ``load <dtype>`` (one stack per dtype listed, loaded into a Volume), ``fail`` (an image
whose pixels no installed decoder can read: a DicomError with a one-line reason),
``reject <kind>`` (listed by the scan with a one-line reason) or ``dicomdir <n>`` (a DICOMDIR
whose references yield n series). It was built from the manifest's columns (sop, photo,
frames, decode, note) and checked by hand where the note column names a trap; the value
checks for those traps are in test_imaging_values.py.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from app.errors import DicomError
from app.imaging.load import load_series
from app.imaging.scan import scan

ODD_OUTCOMES = """
dcm_qa_12bit/12bitSigned_0x0F0F.dcm                                                   | load int16 | signed 12-bit: junk high bits sign-extended (checked below)
dcm_qa_12bit/12bitUnsigned.dcm                                                        | load int16
dcm_qa_12bit/12bitUnsigned_0x0F0F.dcm                                                 | load int16 | junk high bits masked (checked below)
dcm_qa_ts/1.dcm                                                                       | load int16
dcm_qa_ts/2.dcm                                                                       | load int16
dcm_qa_ts/3.dcm                                                                       | load int16
dcm_qa_ts/4.dcm                                                                       | load int16
dcm_qa_ts/5.dcm                                                                       | load int16
dcm_qa_ts/6.dcm                                                                       | load int16
dcm_qa_ts/7.dcm                                                                       | load int16
dcm_qa_ts/8.dcm                                                                       | load int16
dcm_qa_ts/9.dcm                                                                       | load int16
nema-wg04-compsamples/DICOMDIR                                                        | dicomdir 3
nema-wg04-compsamples/IMAGES/J2KI/CT1_J2KI                                            | load int16
nema-wg04-compsamples/IMAGES/J2KI/CT2_J2KI                                            | load int16
nema-wg04-compsamples/IMAGES/J2KI/MR1_J2KI                                            | load int16
nema-wg04-compsamples/IMAGES/J2KI/US1_J2KI                                            | reject colour image
nema-wg04-compsamples/IMAGES/J2KR/CT1_J2KR                                            | load int16
nema-wg04-compsamples/IMAGES/J2KR/CT2_J2KR                                            | load int16
nema-wg04-compsamples/IMAGES/J2KR/MR1_J2KR                                            | load int16
nema-wg04-compsamples/IMAGES/J2KR/US1_J2KR                                            | reject colour image
nema-wg04-compsamples/IMAGES/JLSL/CT1_JLSL                                            | load int16
nema-wg04-compsamples/IMAGES/JLSL/CT2_JLSL                                            | load int16
nema-wg04-compsamples/IMAGES/JLSL/MR1_JLSL                                            | load int16
nema-wg04-compsamples/IMAGES/JLSN/CT1_JLSN                                            | load int16
nema-wg04-compsamples/IMAGES/JLSN/CT2_JLSN                                            | load int16
nema-wg04-compsamples/IMAGES/JLSN/MR1_JLSN                                            | load int16
nema-wg04-compsamples/IMAGES/JPLL/CT1_JPLL                                            | load int16
nema-wg04-compsamples/IMAGES/JPLL/CT2_JPLL                                            | load int16
nema-wg04-compsamples/IMAGES/JPLL/MR1_JPLL                                            | load int16
nema-wg04-compsamples/IMAGES/JPLY/MR1_JPLY                                            | load int16 | JPEG Extended 12-bit: libjpeg and GDCM fail, imagecodecs plugin decodes
nema-wg04-compsamples/IMAGES/REF/CT1_UNC                                              | load int16
nema-wg04-compsamples/IMAGES/REF/CT2_UNC                                              | load int16
nema-wg04-compsamples/IMAGES/REF/MR1_UNC                                              | load int16
nema-wg04-compsamples/IMAGES/REF/US1_UNC                                              | reject colour image
nema-wg04-compsamples/IMAGES/RLE/CT1_RLE                                              | load int16
nema-wg04-compsamples/IMAGES/RLE/CT2_RLE                                              | load int16
nema-wg04-compsamples/IMAGES/RLE/MR1_RLE                                              | load int16
nema-wg04-compsamples/IMAGES/RLE/US1_RLE                                              | reject colour image
nema-wg16-enhanced-mr/DICOMDIR                                                        | dicomdir 5
nema-wg16-enhanced-mr/IMAGES/BRFSMPRS                                                 | load uint16
nema-wg16-enhanced-mr/IMAGES/BRMULTI                                                  | load int16,int16 | 12 frames, 3 orientations: split into stacks
nema-wg16-enhanced-mr/IMAGES/BRSV001                                                  | reject not an image
nema-wg16-enhanced-mr/IMAGES/BRTUM003                                                 | load int16
nema-wg16-enhanced-mr/IMAGES/BRTUMMM1                                                 | load int16
nema-wg16-enhanced-mr/IMAGES/BRTUMSP1                                                 | reject not an image
notZaki-DICOMSamples/CT_Explicit_Little.dcm                                           | load int16
notZaki-DICOMSamples/CT_Implicit_Little_Headless_Retired.dcm                          | load int16 | no preamble, no meta: read with force
notZaki-DICOMSamples/CT_JPEG70.dcm                                                    | load int16
notZaki-DICOMSamples/MG_Explicit_Little.dcm                                           | load int16
notZaki-DICOMSamples/MR_Explicit_Little_MultiFrame.dcm                                | reject cine multi-frame | Frame Increment Pointer = Frame Time
notZaki-DICOMSamples/MR_Implicit_Little.dcm                                           | load int16
notZaki-DICOMSamples/MR_UnspecifiedLength.dcm                                         | reject segmentation object
notZaki-DICOMSamples/OT_Implicit_Little_Headless.dcm                                  | load int16
notZaki-DICOMSamples/US_Explicit_Big_RGB.dcm                                          | reject colour image
notZaki-DICOMSamples/rtstruct.dcm                                                     | reject not an image
pydicom-data/693_J2KR.dcm                                                             | load int16
pydicom-data/693_UNCI.dcm                                                             | load int16
pydicom-data/693_UNCR.dcm                                                             | load int16
pydicom-data/HTJ2KLossless_08_RGB.dcm                                                 | reject colour image
pydicom-data/HTJ2K_08_RGB.dcm                                                         | reject colour image
pydicom-data/JLSL_08_07_0_1F.dcm                                                      | load int16
pydicom-data/JLSL_16_15_1_1F.dcm                                                      | load int16
pydicom-data/JLSL_RGB_ILV0.dcm                                                        | reject colour image
pydicom-data/JLSL_RGB_ILV1.dcm                                                        | reject colour image
pydicom-data/JLSL_RGB_ILV2.dcm                                                        | reject colour image
pydicom-data/JLSN_RGB_ILV0.dcm                                                        | reject colour image
pydicom-data/JPEG-LL.dcm                                                              | load int16
pydicom-data/JPEG2000_UNC.dcm                                                         | load int16
pydicom-data/JPGLosslessP14SV1_1s_1f_8b.dcm                                           | load int16
pydicom-data/MR-SIEMENS-DICOM-WithOverlays.dcm                                        | load int16
pydicom-data/MR2_J2KI.dcm                                                             | load float32
pydicom-data/MR2_J2KR.dcm                                                             | load float32
pydicom-data/MR2_UNCI.dcm                                                             | load float32
pydicom-data/MR2_UNCR.dcm                                                             | load float32
pydicom-data/OBXXXX1A.dcm                                                             | reject colour image
pydicom-data/OBXXXX1A_2frame.dcm                                                      | reject colour image
pydicom-data/OBXXXX1A_expb.dcm                                                        | reject colour image
pydicom-data/OBXXXX1A_expb_2frame.dcm                                                 | reject colour image
pydicom-data/OBXXXX1A_rle.dcm                                                         | reject colour image
pydicom-data/OBXXXX1A_rle_2frame.dcm                                                  | reject colour image
pydicom-data/OT-PAL-8-face.dcm                                                        | reject colour image
pydicom-data/RG1_J2KI.dcm                                                             | load int16
pydicom-data/RG3_J2KI.dcm                                                             | load int16
pydicom-data/RG3_J2KR.dcm                                                             | load int16
pydicom-data/SC_rgb.dcm                                                               | reject colour image
pydicom-data/SC_rgb_16bit.dcm                                                         | reject colour image
pydicom-data/SC_rgb_16bit_2frame.dcm                                                  | reject colour image
pydicom-data/SC_rgb_2frame.dcm                                                        | reject colour image
pydicom-data/SC_rgb_32bit.dcm                                                         | reject colour image
pydicom-data/SC_rgb_32bit_2frame.dcm                                                  | reject colour image
pydicom-data/SC_rgb_dcmtk_ebcr_dcmd.dcm                                               | reject colour image
pydicom-data/SC_rgb_dcmtk_ebcyn1_dcmd.dcm                                             | reject colour image
pydicom-data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm                                             | reject colour image
pydicom-data/SC_rgb_dcmtk_ebcynp_dcmd.dcm                                             | reject colour image
pydicom-data/SC_rgb_dcmtk_ebcys2_dcmd.dcm                                             | reject colour image
pydicom-data/SC_rgb_dcmtk_ebcys4_dcmd.dcm                                             | reject colour image
pydicom-data/SC_rgb_expb.dcm                                                          | reject colour image
pydicom-data/SC_rgb_expb_16bit.dcm                                                    | reject colour image
pydicom-data/SC_rgb_expb_16bit_2frame.dcm                                             | reject colour image
pydicom-data/SC_rgb_expb_2frame.dcm                                                   | reject colour image
pydicom-data/SC_rgb_expb_32bit.dcm                                                    | reject colour image
pydicom-data/SC_rgb_expb_32bit_2frame.dcm                                             | reject colour image
pydicom-data/SC_rgb_gdcm2k_uncompressed.dcm                                           | reject colour image
pydicom-data/SC_ybr_full_uncompressed.dcm                                             | reject colour image
pydicom-data/US1_J2KI.dcm                                                             | reject colour image
pydicom-data/US1_J2KR.dcm                                                             | reject colour image
pydicom-data/US1_UNCI.dcm                                                             | reject colour image
pydicom-data/US1_UNCR.dcm                                                             | reject colour image
pydicom-data/bad_sequence.dcm                                                         | load int16
pydicom-data/color-pl.dcm                                                             | reject colour image
pydicom-data/color-px.dcm                                                             | reject colour image
pydicom-data/eCT_Supplemental.dcm                                                     | load int16
pydicom-data/emri_small.dcm                                                           | reject without slice positions | enhanced MR stripped of its functional groups
pydicom-data/emri_small_RLE.dcm                                                       | reject without slice positions
pydicom-data/emri_small_big_endian.dcm                                                | reject without slice positions
pydicom-data/emri_small_jpeg_2k_lossless.dcm                                          | reject without slice positions
pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm                                | reject without slice positions
pydicom-data/emri_small_jpeg_ls_lossless.dcm                                          | reject without slice positions
pydicom-data/explicit_VR-UN.dcm                                                       | load int16
pydicom-data/gdcm-US-ALOKA-16.dcm                                                     | reject colour image
pydicom-data/gdcm-US-ALOKA-16_big.dcm                                                 | reject colour image
pydicom-data/liver.dcm                                                                | reject segmentation object
pydicom-data/liver_deflate.dcm                                                        | reject segmentation object
pydicom-data/liver_expb.dcm                                                           | reject segmentation object
pydicom-data/liver_j2k.dcm                                                            | reject segmentation object
pydicom-data/liver_nonbyte_aligned.dcm                                                | reject segmentation object
pydicom-data/liver_nonbyte_aligned_deflate.dcm                                        | reject segmentation object
pydicom-data/liver_nonbyte_aligned_j2k.dcm                                            | reject segmentation object
pydicom-data/liver_nonbyte_aligned_rle.dcm                                            | reject segmentation object
pydicom-data/liver_rle.dcm                                                            | reject segmentation object
pydicom-data/mlut_18.dcm                                                              | load float32
pydicom-data/parametric_map_double_float.dcm                                          | load float32
pydicom-data/parametric_map_float.dcm                                                 | load float32
pydicom-data/vlut_04.dcm                                                              | load int16
pydicom-wheel-test_files/693_J2KI.dcm                                                 | load int16
pydicom-wheel-test_files/CT_small.dcm                                                 | load int16
pydicom-wheel-test_files/ExplVR_BigEnd.dcm                                            | reject colour image
pydicom-wheel-test_files/ExplVR_BigEndNoMeta.dcm                                      | reject not an image
pydicom-wheel-test_files/ExplVR_LitEndNoMeta.dcm                                      | reject not an image
pydicom-wheel-test_files/GDCMJ2K_TextGBR.dcm                                          | reject colour image
pydicom-wheel-test_files/J2K_pixelrep_mismatch.dcm                                    | load int16
pydicom-wheel-test_files/JPEG-lossy.dcm                                               | load int16 | JPEG Extended 12-bit with a marker libjpeg rejects: imagecodecs plugin
pydicom-wheel-test_files/JPEG2000-embedded-sequence-delimiter.dcm                     | fail | damaged J2K stream
pydicom-wheel-test_files/JPEG2000.dcm                                                 | load int16
pydicom-wheel-test_files/JPEGLSNearLossless_08.dcm                                    | load int16
pydicom-wheel-test_files/JPEGLSNearLossless_16.dcm                                    | load uint16
pydicom-wheel-test_files/JPGExtended.dcm                                              | load int16
pydicom-wheel-test_files/MR_small.dcm                                                 | load int16
pydicom-wheel-test_files/MR_small_RLE.dcm                                             | load int16
pydicom-wheel-test_files/MR_small_bigendian.dcm                                       | load int16
pydicom-wheel-test_files/MR_small_expb.dcm                                            | load int16
pydicom-wheel-test_files/MR_small_implicit.dcm                                        | load int16
pydicom-wheel-test_files/MR_small_jp2klossless.dcm                                    | load int16
pydicom-wheel-test_files/MR_small_jpeg_ls_lossless.dcm                                | load int16
pydicom-wheel-test_files/MR_small_padded.dcm                                          | load int16
pydicom-wheel-test_files/MR_truncated.dcm                                             | reject pixel data truncated | 8130 of 8192 bytes: refused before reading
pydicom-wheel-test_files/SC_jpeg_no_color_transform.dcm                               | reject colour image
pydicom-wheel-test_files/SC_jpeg_no_color_transform_2.dcm                             | reject colour image
pydicom-wheel-test_files/SC_rgb_dcmtk_+eb+cr.dcm                                      | reject colour image
pydicom-wheel-test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_dcmtk_+eb+cy+n2.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_dcmtk_+eb+cy+np.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_dcmtk_+eb+cy+s2.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_dcmtk_+eb+cy+s4.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_gdcm_KY.dcm                                           | reject colour image
pydicom-wheel-test_files/SC_rgb_jls_lossy_line.dcm                                    | reject colour image
pydicom-wheel-test_files/SC_rgb_jls_lossy_sample.dcm                                  | reject colour image
pydicom-wheel-test_files/SC_rgb_jpeg.dcm                                              | reject colour image
pydicom-wheel-test_files/SC_rgb_jpeg_app14_dcmd.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_jpeg_dcmd.dcm                                         | reject colour image
pydicom-wheel-test_files/SC_rgb_jpeg_dcmtk.dcm                                        | reject colour image
pydicom-wheel-test_files/SC_rgb_jpeg_gdcm.dcm                                         | reject colour image
pydicom-wheel-test_files/SC_rgb_jpeg_lossy_gdcm.dcm                                   | reject colour image
pydicom-wheel-test_files/SC_rgb_rle.dcm                                               | reject colour image
pydicom-wheel-test_files/SC_rgb_rle_16bit.dcm                                         | reject colour image
pydicom-wheel-test_files/SC_rgb_rle_16bit_2frame.dcm                                  | reject colour image
pydicom-wheel-test_files/SC_rgb_rle_2frame.dcm                                        | reject colour image
pydicom-wheel-test_files/SC_rgb_rle_32bit.dcm                                         | reject colour image
pydicom-wheel-test_files/SC_rgb_rle_32bit_2frame.dcm                                  | reject colour image
pydicom-wheel-test_files/SC_rgb_small_odd.dcm                                         | reject colour image
pydicom-wheel-test_files/SC_rgb_small_odd_big_endian.dcm                              | reject colour image
pydicom-wheel-test_files/SC_rgb_small_odd_jpeg.dcm                                    | reject colour image
pydicom-wheel-test_files/SC_ybr_full_422_uncompressed.dcm                             | reject colour image
pydicom-wheel-test_files/UN_sequence.dcm                                              | reject not an image
pydicom-wheel-test_files/badVR.dcm                                                    | reject RT dose
pydicom-wheel-test_files/empty_charset_LEI.dcm                                        | reject not an image
pydicom-wheel-test_files/examples_jpeg2k.dcm                                          | reject colour image
pydicom-wheel-test_files/examples_overlay.dcm                                         | load int16
pydicom-wheel-test_files/examples_palette.dcm                                         | reject colour image
pydicom-wheel-test_files/examples_rgb_color.dcm                                       | reject colour image
pydicom-wheel-test_files/examples_ybr_color.dcm                                       | reject colour image
pydicom-wheel-test_files/image_dfl.dcm                                                | load int16
pydicom-wheel-test_files/liver_1frame.dcm                                             | reject segmentation object
pydicom-wheel-test_files/liver_expb_1frame.dcm                                        | reject segmentation object
pydicom-wheel-test_files/meta_missing_tsyntax.dcm                                     | reject not an image
pydicom-wheel-test_files/nested_priv_SQ.dcm                                           | reject not an image
pydicom-wheel-test_files/no_meta.dcm                                                  | reject not a DICOM file | starts one byte off: no element parses
pydicom-wheel-test_files/no_meta_group_length.dcm                                     | reject not an image
pydicom-wheel-test_files/priv_SQ.dcm                                                  | reject not an image
pydicom-wheel-test_files/reportsi.dcm                                                 | reject not an image
pydicom-wheel-test_files/reportsi_with_empty_number_tags.dcm                          | reject not an image
pydicom-wheel-test_files/rtdose.dcm                                                   | reject RT dose
pydicom-wheel-test_files/rtdose_1frame.dcm                                            | reject RT dose
pydicom-wheel-test_files/rtdose_expb.dcm                                              | reject RT dose
pydicom-wheel-test_files/rtdose_expb_1frame.dcm                                       | reject RT dose
pydicom-wheel-test_files/rtdose_rle.dcm                                               | reject RT dose
pydicom-wheel-test_files/rtdose_rle_1frame.dcm                                        | reject RT dose
pydicom-wheel-test_files/rtplan.dcm                                                   | reject not an image
pydicom-wheel-test_files/rtplan_truncated.dcm                                         | reject not an image
pydicom-wheel-test_files/rtstruct.dcm                                                 | reject not an image
pydicom-wheel-test_files/test-SR.dcm                                                  | reject not an image
pydicom-wheel-test_files/waveform_ecg.dcm                                             | reject not an image
pydicom-wheel-test_files/dicomdirtests/DICOMDIR                                       | dicomdir 24
pydicom-wheel-test_files/dicomdirtests/DICOMDIR-bigEnd                                | dicomdir 24
pydicom-wheel-test_files/dicomdirtests/DICOMDIR-empty.dcm                             | dicomdir 0
pydicom-wheel-test_files/dicomdirtests/DICOMDIR-implicit                              | dicomdir 24
pydicom-wheel-test_files/dicomdirtests/DICOMDIR-nooffset                              | dicomdir 24
pydicom-wheel-test_files/dicomdirtests/DICOMDIR-nopatient                             | dicomdir 24
pydicom-wheel-test_files/dicomdirtests/DICOMDIR-reordered                             | dicomdir 24
pydicom-wheel-test_files/dicomdirtests/77654033/CR1/6154                              | load float32
pydicom-wheel-test_files/dicomdirtests/77654033/CR2/6247                              | load float32
pydicom-wheel-test_files/dicomdirtests/77654033/CR3/6278                              | load float32
pydicom-wheel-test_files/dicomdirtests/77654033/CT2/17106                             | load int16
pydicom-wheel-test_files/dicomdirtests/77654033/CT2/17136                             | load int16
pydicom-wheel-test_files/dicomdirtests/77654033/CT2/17166                             | load int16
pydicom-wheel-test_files/dicomdirtests/77654033/CT2/17196                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT2N/6293                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT2N/6924                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT5N/2062                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT5N/2392                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT5N/2693                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT5N/3023                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892001/CT5N/3353                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR1/15820                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR1/4919                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR1/5641                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/15970                             | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/4950                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/4981                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/5011                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/6273                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/6605                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR2/6935                              | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4467                            | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4528                            | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4558                            | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4588                            | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4618                            | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4648                            | load int16
pydicom-wheel-test_files/dicomdirtests/98892003/MR700/4678                            | load int16
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/DICOMDIR                            | dicomdir 0
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000001 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000002 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000003 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000004 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000005 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000006 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000007 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000008 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000009 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000A | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000B | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000C | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000D | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000E | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000F | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000G | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000H | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000I | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000J | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000K | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000L | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000M | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000N | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000O | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000P | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Q | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000R | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000S | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000T | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000U | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000V | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000W | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000X | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Y | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000Z | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000010 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000011 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000012 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000013 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000014 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000015 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000016 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000017 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000018 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000019 | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001A | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001B | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001C | reject not an image
pydicom-wheel-test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001D | reject not an image
"""

REJECT_KINDS = (
    "not a DICOM file",
    "colour image",
    "not an image",
    "segmentation object",
    "RT dose",
    "cine multi-frame",
    "without slice positions",
    "pixel data truncated",
)


def _table() -> dict[str, str]:
    rows = {}
    for line in ODD_OUTCOMES.strip().splitlines():
        name, outcome, *_ = (part.strip() for part in line.split("|"))
        rows[name] = outcome
    return rows


@pytest.fixture(scope="module")
def odd(dicom_dir: Path) -> Path:
    return dicom_dir / "odd"


def _kind(reason: str) -> str:
    for kind in REJECT_KINDS:
        if kind in reason:
            return kind
    return f"unexpected reason: {reason}"


def _check_volume(volume) -> None:
    assert volume.array.ndim == 3
    assert volume.array.dtype != np.float64
    assert all(s > 0 for s in volume.spacing)
    direction = volume.direction
    assert np.allclose(direction.T @ direction, np.eye(3), atol=1e-4)
    if volume.array.dtype.kind == "f":
        assert np.isfinite(volume.array).all()


def _outcome(path: Path) -> str:
    result = scan(path)
    for rejected in result.rejected:
        assert rejected.reason
        assert "\n" not in rejected.reason
    if result.dicomdirs:
        return f"dicomdir {len(result.series)}"
    if not result.series:
        return "reject " + _kind(result.rejected[0].reason)
    dtypes = []
    for series in result.series:
        try:
            volume = load_series(series)
        except DicomError as exc:
            assert str(exc)
            assert "\n" not in str(exc)
            return "fail"
        _check_volume(volume)
        dtypes.append(str(volume.array.dtype))
    return "load " + ",".join(dtypes)


def test_table_covers_the_whole_manifest(odd: Path) -> None:
    with open(odd / "MANIFEST.csv", newline="") as handle:
        manifest = sorted(row["file"] for row in csv.DictReader(handle))
    assert manifest == sorted(_table())


@pytest.mark.timeout(120)
def test_every_file_has_its_recorded_outcome(odd: Path) -> None:
    mismatches, slow = [], []
    start = time.perf_counter()
    for name, expected in _table().items():
        begun = time.perf_counter()
        got = _outcome(odd / name)
        if time.perf_counter() - begun > 10:
            slow.append(name)
        if got != expected:
            mismatches.append((name, expected, got))
    assert mismatches == []
    assert slow == []
    assert time.perf_counter() - start < 60


@pytest.mark.timeout(180)
def test_whole_shared_tree_scan_accounts_for_every_file_and_good_series_load(
    dicom_dir: Path, odd: Path
) -> None:
    result = scan(dicom_dir)
    for name in (
        "ct-abdomen-tcia-pancreas-134",
        "ct-head-ge-gantry-tilt-28",
        "mr-brain-t1-sagittal-philips-170",
    ):
        stacks = [s for s in result.series if Path(s.sources[0].path).parent.name == name]
        assert len(stacks) == 1, name
    used = {src.label for s in result.series for src in s.sources}
    rejected = {r.file for r in result.rejected}
    dicomdirs = set(result.dicomdirs)
    table = _table()
    for name in table:
        label = str(odd / name)
        assert label in used | rejected | dicomdirs, name
    failing = {str(odd / n) for n, outcome in table.items() if outcome == "fail"}
    loaded = 0
    for series in result.series:
        labels = {src.label for src in series.sources}
        try:
            _check_volume(load_series(series))
            loaded += 1
        except DicomError:
            assert labels & failing, f"series from {sorted(labels)[:2]} should load"
    assert loaded >= 64
