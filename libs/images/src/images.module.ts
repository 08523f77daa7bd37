import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CodesModule } from '@kiln/codes';
import { CredentialsService } from './credentials.service';
import { ImageAccess } from './image-access';
import { ImageUploadsService } from './image-uploads.service';
import { PulledImage } from './pulled-image.entity';
import { PulledImagesStore } from './pulled-images.store';
import { RegistryCredential } from './registry-credential.entity';
import { ZipPackagesService } from './zip-packages.service';

@Module({
  imports: [CodesModule, TypeOrmModule.forFeature([RegistryCredential, PulledImage])],
  providers: [
    CredentialsService,
    ImageAccess,
    ImageUploadsService,
    PulledImagesStore,
    ZipPackagesService,
  ],
  exports: [
    CredentialsService,
    ImageAccess,
    ImageUploadsService,
    PulledImagesStore,
    ZipPackagesService,
  ],
})
export class ImagesModule {}
